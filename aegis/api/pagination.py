"""Pagination: page numbers for licenses and customers, cursors for the audit trail.

`?page_size=` defaults to 50; larger values than 500 are capped at 500 (as DRF does). A
page size or page number that is not a positive integer, or a cursor that was not issued
by the server, is a 400 — a wrong query is the client's error, not an empty result.
"""

from __future__ import annotations

from rest_framework import pagination
from rest_framework.exceptions import NotFound, ValidationError

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 500


def _positive_int(raw: str, name: str) -> int:
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 9 or int(raw) < 1:
        raise ValidationError({name: ["Must be a positive integer."]})
    return int(raw)


class _PageSizeMixin:
    page_size = DEFAULT_PAGE_SIZE
    page_size_query_param = "page_size"
    max_page_size = MAX_PAGE_SIZE

    def get_page_size(self, request):
        raw = request.query_params.get(self.page_size_query_param)
        if raw is None:
            return self.page_size
        return min(_positive_int(raw, self.page_size_query_param), self.max_page_size)


class PageNumberPagination(_PageSizeMixin, pagination.PageNumberPagination):
    def get_page_number(self, request, paginator):
        raw = request.query_params.get(self.page_query_param)
        if raw is None or raw in self.last_page_strings:
            return super().get_page_number(request, paginator)
        return _positive_int(raw, self.page_query_param)


class NewestFirstCursorPagination(_PageSizeMixin, pagination.CursorPagination):
    """Newest first on an index of (-created_at, -id): page 1 and page 10,000 cost the same."""

    ordering = ("-created_at", "-id")

    def decode_cursor(self, request):
        try:
            return super().decode_cursor(request)
        except NotFound:
            raise ValidationError({self.cursor_query_param: ["Invalid cursor."]}) from None
