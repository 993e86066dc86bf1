"""django-filter pieces shared by the list endpoints. Every filter validates its value, so
`?status=bogus`, `?is_active=maybe` or a bad date is a 400, never an ignored filter."""

from __future__ import annotations

import datetime as dt
import functools

from django import forms
from django.db.models import F
from django_filters import rest_framework as filters
from django_filters.constants import EMPTY_VALUES
from django_filters.fields import IsoDateTimeField
from django_filters.utils import translate_validation
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
    400 too, as an unknown field of a body is.

    Only the filters the query names are built and applied: django-filter deep-copies
    every declared filter and builds a form class and a form of all of them for each
    request (a noticeable part of a list page's CPU, docs/performance.md), and a filter
    that is not named applies nothing. A query naming none skips the filterset. The
    browsable API's filter form (`to_html`) still shows them all."""

    def filter_queryset(self, request, queryset, view):
        filterset_class = self.get_filterset_class(view, queryset)
        if filterset_class is None:
            return queryset
        named = _refuse_blank_or_unknown(request, filterset_class, view)
        if not named:
            return queryset
        kwargs = self.get_filterset_kwargs(request, queryset, view)
        filterset = _narrowed(filterset_class, named)(**kwargs)
        if not filterset.is_valid():
            raise translate_validation(filterset.errors)
        return filterset.qs

    def get_filterset(self, request, queryset, view):
        filterset = super().get_filterset(request, queryset, view)
        if filterset is not None:
            _refuse_blank_or_unknown(request, type(filterset), view)
        return filterset


def _refuse_blank_or_unknown(request, filterset_class, view) -> tuple[str, ...]:
    """The filters the query names, in declared order; 400 for a blank typed filter or a
    parameter the list does not know."""
    declared = filterset_class.base_filters
    params = request.query_params
    named = tuple(name for name in declared if name in params)
    blank = [
        name
        for name in named
        if not isinstance(declared[name], filters.CharFilter)
        and all(value == "" for value in params.getlist(name))
    ]
    if blank:
        raise ValidationError({name: ["This field may not be blank."] for name in blank})
    unknown = sorted(set(params) - set(declared) - _known(view))
    if unknown:
        # `?stauts=revoked` would otherwise list every license.
        raise ValidationError({name: ["Unknown query parameter."] for name in unknown})
    return named


@functools.lru_cache(maxsize=256)
def _narrowed(filterset_class, names: tuple[str, ...]):
    """`filterset_class` with only the filters `names` (same order, same definitions)."""
    narrowed = type(filterset_class.__name__, (filterset_class,), {})
    narrowed.base_filters = {name: filterset_class.base_filters[name] for name in names}
    return narrowed


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
