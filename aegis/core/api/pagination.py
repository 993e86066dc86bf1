"""Pagination: page numbers for licenses and customers, cursors for the audit trail.

`?page_size=` defaults to 50; larger values than 500 are capped at 500 (as DRF does). A
page size or page number that is not a positive integer, or a cursor that was not issued
by the server, is a 400 — a wrong query is the client's error, not an empty result.

Page numbers at a million rows (`LargeTablePaginator`):

- `count`, on PostgreSQL, is the query planner's estimate of the matching rows when the
  planner expects more than `COUNT_EXACT_UP_TO` (10,000) of them; otherwise it is exact,
  counted with a `COUNT` that stops after 10,001 rows. A full `COUNT(*)` per page would
  read a million rows on every request. `page=last` uses that count too. SQLite (the
  zero-setup default) always counts exactly.
  The planner's estimate for a filter is kept for `ESTIMATE_TTL_SECONDS` (10) in each
  worker, so paging through one filter asks the planner once: it only changes when
  PostgreSQL re-analyses the table anyway, and an exact count is still counted each time.
- `next` is exact whatever the count: a page reads one row more than it shows; and a page
  that is not full is the last one, so it gives the exact count without a query.
- deep pages (offset from `DEFERRED_JOIN_FROM`) first find the ids of their rows in the
  ordering's index, then read those rows only, instead of reading and discarding every
  row before the offset.
"""

from __future__ import annotations

import datetime as dt
import json
import time

from django.core.paginator import EmptyPage, Page, PageNotAnInteger, Paginator
from django.db import connections
from django.db.models.query import ModelIterable
from django.utils.functional import cached_property
from rest_framework import pagination
from rest_framework.exceptions import NotFound, ValidationError

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 500
COUNT_EXACT_UP_TO = 10_000
DEFERRED_JOIN_FROM = 1_000
ESTIMATE_TTL_SECONDS = 10.0
_ESTIMATES_KEPT = 512
# (database alias, SQL, parameters) -> (time.monotonic() deadline, estimate)
_estimates: dict[tuple, tuple[float, int]] = {}


def planner_estimate(queryset) -> int | None:
    """PostgreSQL's estimate of how many rows `queryset` matches (None elsewhere).

    Kept per SQL and parameters for ESTIMATE_TTL_SECONDS: the EXPLAIN costs CPU and a
    round trip on every page, far more than compiling its SQL for the key
    (docs/performance.md)."""
    connection = connections[queryset.db]
    if connection.vendor != "postgresql":
        return None
    pks = queryset.order_by().values("pk")
    sql, params = pks.query.sql_with_params()
    # Instants to the minute: a status filter compares with the current time, which would
    # make every request's key new; an estimate does not move within a minute.
    key = (queryset.db, sql, tuple(_to_the_minute(value) for value in params))
    now = time.monotonic()
    try:
        kept = _estimates.get(key)
    except TypeError:  # a parameter that cannot be a key (a list): not kept
        kept = key = None
    if kept is not None and kept[0] > now:
        return kept[1]
    plan = json.loads(pks.explain(format="json"))
    estimate = int(plan[0]["Plan"]["Plan Rows"])
    if key is not None and ESTIMATE_TTL_SECONDS > 0:
        if len(_estimates) >= _ESTIMATES_KEPT:
            _estimates.clear()
        _estimates[key] = (now + ESTIMATE_TTL_SECONDS, estimate)
    return estimate


def bounded_count(queryset, exact_up_to: int = COUNT_EXACT_UP_TO) -> int:
    """How many rows `queryset` matches: on PostgreSQL the planner's estimate when it
    expects more than `exact_up_to` rows, else a count that stops after `exact_up_to + 1`
    rows (exact, unless the planner was wrong by that much)."""
    estimate = planner_estimate(queryset)
    if estimate is None:
        return queryset.count()
    if estimate > exact_up_to:
        return estimate
    counted = queryset.order_by().values("pk")[: exact_up_to + 1].count()
    return counted if counted <= exact_up_to else max(estimate, exact_up_to + 1)


def _to_the_minute(value):
    if isinstance(value, dt.datetime):
        return value.replace(second=0, microsecond=0)
    return value


class _Page(Page):
    def __init__(self, object_list, number, paginator, *, has_next: bool):
        super().__init__(object_list, number, paginator)
        self._has_next = has_next

    def has_next(self) -> bool:
        return self._has_next


def _rows(queryset, offset: int, limit: int, read=None) -> list:
    """The rows from `offset`: model instances, or what `read(queryset)` gives (a view's
    `page_rows`, e.g. dictionaries from values())."""
    read = read or (lambda rows: rows)
    if offset < DEFERRED_JOIN_FROM:
        return list(read(queryset)[offset : offset + limit])
    # Deferred join: the offset is walked in the ordering's index (ids only), then only the
    # rows of the page are read, in the same order.
    ids = list(queryset.values_list("pk", flat=True)[offset : offset + limit])
    rows = read(queryset.order_by().filter(pk__in=ids))
    if rows._iterable_class is ModelIterable:
        by_id = {row.pk: row for row in rows}
    else:
        pk = queryset.model._meta.pk.name
        by_id = {row[pk]: row for row in rows}
    return [by_id[pk] for pk in ids if pk in by_id]


class LargeTablePaginator(Paginator):
    """Django's paginator with a bounded count, an exact `next`, and deferred joins."""

    # Set by page() when the page itself tells the count: it is not full, so it is the last.
    _known_count: int | None = None
    _at_least: int = 0

    def __init__(self, object_list, per_page, *, page_rows=None, **kwargs):
        super().__init__(object_list, per_page, **kwargs)
        self.page_rows = page_rows

    @cached_property
    def count(self) -> int:
        if self._known_count is not None:
            return self._known_count
        return max(bounded_count(self.object_list), self._at_least)

    def validate_number(self, number):
        # The count may be an estimate: a page is valid when it has rows, not by arithmetic.
        try:
            number = int(number)
        except (TypeError, ValueError):
            raise PageNotAnInteger("That page number is not an integer") from None
        if number < 1:
            raise EmptyPage("That page number is less than 1")
        return number

    def page(self, number):
        number = self.validate_number(number)
        offset = (number - 1) * self.per_page
        rows = _rows(self.object_list, offset, self.per_page + 1, self.page_rows)
        if not rows and number > 1:
            raise EmptyPage("That page contains no results")
        has_next = len(rows) > self.per_page
        if has_next:
            self._at_least = offset + len(rows)
        else:
            self._known_count = offset + len(rows)
        return _Page(rows[: self.per_page], number, self, has_next=has_next)


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
    """A view may set `page_rows`: a function turning its queryset into what its serializer
    reads for a page (licensing.api: dictionaries); counts and filters use the queryset."""

    _page_rows = None

    def paginate_queryset(self, queryset, request, view=None):
        self._page_rows = getattr(view, "page_rows", None)
        return super().paginate_queryset(queryset, request, view)

    def django_paginator_class(self, queryset, page_size):
        # DRF builds its paginator through this attribute.
        return LargeTablePaginator(queryset, page_size, page_rows=self._page_rows)

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
