"""django-filter pieces shared by the list endpoints. Every filter validates its value, so
`?status=bogus`, `?is_active=maybe` or a bad date is a 400, never an ignored filter."""

from __future__ import annotations

from django.db.models import F
from django_filters import rest_framework as filters
from django_filters.constants import EMPTY_VALUES


class StableOrderingFilter(filters.OrderingFilter):
    """`?ordering=` with the primary key as the last tie-breaker, so pages never overlap.

    A null (a perpetual license's `expires_at`) sorts as the largest value on every
    database, as PostgreSQL does: last ascending, first descending.
    """

    def filter(self, qs, value):
        if value in EMPTY_VALUES:
            return qs
        ordering = []
        for param in value:
            field = self.get_ordering_value(param)
            if field.startswith("-"):
                ordering.append(F(field[1:]).desc(nulls_first=True))
            else:
                ordering.append(F(field).asc(nulls_last=True))
        return qs.order_by(*ordering, "pk")


class StrictBooleanFilter(filters.TypedChoiceFilter):
    """`true` or `false`, nothing else (django-filter's BooleanFilter ignores other values)."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("choices", (("true", "true"), ("false", "false")))
        kwargs.setdefault("coerce", lambda value: value == "true")
        super().__init__(*args, **kwargs)
