"""django-filter pieces shared by the list endpoints. Every filter validates its value, so
`?status=bogus`, `?is_active=maybe` or a bad date is a 400, never an ignored filter."""

from __future__ import annotations

import datetime as dt

from django import forms
from django.db.models import F
from django_filters import rest_framework as filters
from django_filters.constants import EMPTY_VALUES
from django_filters.fields import IsoDateTimeField
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework.exceptions import ValidationError


class StableOrderingFilter(filters.OrderingFilter):
    """`?ordering=` with the primary key as the last tie-breaker, so pages never overlap.

    A null (a perpetual license's `expires_at`) sorts as the largest value on every
    database, as PostgreSQL does: last ascending, first descending.
    """

    def filter(self, qs, value):
        if value in EMPTY_VALUES:
            return qs
        if not all(value):  # `?ordering=,,` or `?ordering=name,`: no field to sort by
            raise ValidationError({self.field_name: ["Name a field between each comma."]})
        ordering = []
        for param in value:
            field = self.get_ordering_value(param)
            if field.startswith("-"):
                ordering.append(F(field[1:]).desc(nulls_first=True))
            else:
                ordering.append(F(field).asc(nulls_last=True))
        return qs.order_by(*ordering, "pk")


@extend_schema_field(OpenApiTypes.BOOL)
class StrictBooleanFilter(filters.TypedChoiceFilter):
    """`true` or `false`, nothing else (django-filter's BooleanFilter ignores other values)."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("choices", (("true", "true"), ("false", "false")))
        kwargs.setdefault("coerce", lambda value: value == "true")
        super().__init__(*args, **kwargs)


class StrictFilterBackend(filters.DjangoFilterBackend):
    """DRF's filter backend, refusing a blank value of a typed filter: `?until=`,
    `?status=` or `?license_id=` is a 400, as `?until=yesterday` is, rather than a filter
    silently dropped (django-filter treats an empty value as "not given"). Text filters
    (`search`, `module_name`) may be blank. A query parameter the list does not know is a
    400 too, as an unknown field of a body is."""

    def get_filterset(self, request, queryset, view):
        filterset = super().get_filterset(request, queryset, view)
        if filterset is None:
            return None
        blank = [
            name
            for name, declared in filterset.filters.items()
            if not isinstance(declared, filters.CharFilter)
            and name in request.query_params
            and all(value == "" for value in request.query_params.getlist(name))
        ]
        if blank:
            raise ValidationError({name: ["This field may not be blank."] for name in blank})
        unknown = sorted(set(request.query_params) - set(filterset.filters) - _known(view))
        if unknown:
            # `?stauts=revoked` would otherwise list every license.
            raise ValidationError({name: ["Unknown query parameter."] for name in unknown})
        return filterset


def _known(view) -> set[str]:
    """Query parameters a list reads besides its filters: paging, and DRF's `format`."""
    paginator = getattr(view, "paginator", None)
    names = {"format"}
    for attribute in ("page_query_param", "page_size_query_param", "cursor_query_param"):
        name = getattr(paginator, attribute, None)
        if name:
            names.add(name)
    return names


class _InstantField(IsoDateTimeField):
    def clean(self, value):
        instant = super().clean(value)
        if instant is None:
            return None
        # In UTC: PostgreSQL refuses offsets beyond ±15:59 (ISO 8601 allows ±23:59), and an
        # offset can push year 1 or 9999 off the calendar.
        try:
            return instant.astimezone(dt.UTC)
        except (OverflowError, ValueError):
            raise forms.ValidationError("Enter an instant between the years 1 and 9999.") from None


class InstantFilter(filters.IsoDateTimeFilter):
    """An ISO 8601 instant, compared in UTC whatever offset it was written with."""

    field_class = _InstantField
