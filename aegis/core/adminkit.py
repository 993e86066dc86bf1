"""Building blocks shared by the back-office's ModelAdmins.

The admin is a client of the services: a form's "save" is a service call, made while the
form is validated so that the service's `DomainError` lands on the form's fields instead
of crashing the page; lists over millions of rows count without `COUNT(*)`.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import uuid
from collections.abc import Mapping
from functools import cached_property
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.views.main import ChangeList
from django.core.paginator import Paginator
from django.db import connections
from django.db.models import Max, Min, Model, Q, QuerySet
from django.utils import formats, timezone
from django.utils.text import capfirst

from aegis.core import actors
from aegis.core.exceptions import DomainError


def actor_for(request) -> str:
    """The audit actor of a back-office request: `user:<username>`."""
    return actors.for_user(request.user.get_username())


def add_domain_error(
    form: forms.BaseForm, exc: DomainError, field_map: Mapping[str, str] | None = None
) -> None:
    """Put a service's error on the form: each `errors` entry on its field (or the form field
    `field_map` names for it), an error without fields on the field mapped from its `code`,
    else at the top of the form."""
    field_map = field_map or {}

    def target(name: str | None) -> str | None:
        name = field_map.get(name, name) if name else None
        return name if name in form.fields else None

    if exc.errors:
        for field, field_messages in exc.errors.items():
            for message in field_messages:
                form.add_error(target(field), message)
    else:
        form.add_error(target(exc.code), exc.detail)


class ServiceForm(forms.ModelForm):
    """A ModelForm whose "save" is one service call.

    The call is made at the end of validation, once every field is clean, so that a
    `DomainError` becomes a form error (Django's admin has no later point where an error can
    still be shown on the form). ModelForm's own model validation is skipped on purpose: the
    service owns the rules. Subclasses implement `perform(actor)` and return the object.
    """

    # Service field names or error codes → the form field that shows the error.
    error_fields: Mapping[str, str] = {}
    request = None  # bound by ServiceAdmin.get_form
    result: Model | None = None

    def perform(self, actor: str) -> Model:
        raise NotImplementedError

    def _post_clean(self) -> None:
        if self._errors:
            return
        try:
            self.result = self.perform(actor_for(self.request))
        except DomainError as exc:
            add_domain_error(self, exc, self.error_fields)


class ServiceAdmin(admin.ModelAdmin):
    """A ModelAdmin whose add/change form is a `ServiceForm`: the service has already saved
    the object (with its audit row) when Django's admin gets to "save" it."""

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change=change, **kwargs)
        if issubclass(form, ServiceForm):
            form = type(form.__name__, (form,), {"request": request})
        return form

    def save_form(self, request, form, change):
        if isinstance(form, ServiceForm):
            return form.result
        return super().save_form(request, form, change)

    def save_model(self, request, obj, form, change):
        if not isinstance(form, ServiceForm):  # pragma: no cover - every form here is one
            raise TypeError("back-office writes go through a service")

    def save_related(self, request, form, formsets, change):
        """Nothing to do: the service saved everything the form holds."""


def report_error(request, exc: DomainError) -> None:
    messages.error(request, exc.detail)


# --- Large tables ------------------------------------------------------------------------


class LargeTablePaginator(Paginator):
    """A paginator that does not `COUNT(*)` a table of millions of rows.

    On PostgreSQL an unfiltered list takes the planner's row estimate (`pg_class.reltuples`,
    kept fresh by autovacuum); a filtered list counts at most `exact_up_to + 1` rows and,
    past that, takes the planner's estimate for the query. `is_estimate` tells templates to
    say "about". Other databases count exactly (they hold development data).
    """

    exact_up_to = 10_000

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.is_estimate = False

    @cached_property
    def count(self) -> int:
        qs = self.object_list
        if not isinstance(qs, QuerySet) or connections[qs.db].vendor != "postgresql":
            return super().count
        connection = connections[qs.db]
        if not qs.query.has_filters():
            estimate = _table_estimate(connection, qs.model._meta.db_table)
            if estimate > self.exact_up_to:
                self.is_estimate = True
                return estimate
        capped = qs.order_by()[: self.exact_up_to + 1].count()
        if capped <= self.exact_up_to:
            return capped
        self.is_estimate = True
        return max(capped, _query_estimate(connection, qs))


def _table_estimate(connection, table: str) -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT reltuples::bigint FROM pg_class WHERE oid = %s::regclass", [table])
        row = cursor.fetchone()
    # -1 means "never analysed" (PostgreSQL 14+): not an estimate, count instead.
    return int(row[0]) if row and row[0] and row[0] > 0 else 0


def _query_estimate(connection, qs: QuerySet) -> int:
    sql, params = qs.order_by().query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (FORMAT JSON) {sql}", params)
        plan = cursor.fetchone()[0]
    if isinstance(plan, str):  # psycopg decodes json columns; a plain driver may not
        plan = json.loads(plan)
    return int(plan[0]["Plan"]["Plan Rows"])


def distinct_values(model: type[Model], field: str, *, limit: int = 100) -> list[str]:
    """The distinct non-null values of an indexed column, sorted, at most `limit`.

    On PostgreSQL this is a loose index scan (one index probe per distinct value), so a
    column with a handful of values over millions of rows answers in milliseconds where
    `SELECT DISTINCT` would read the whole table.
    """
    connection = connections["default"]
    column = model._meta.get_field(field).column
    if connection.vendor != "postgresql":
        return list(
            model._default_manager.order_by(field)
            .exclude(**{f"{field}__isnull": True})
            .values_list(field, flat=True)
            .distinct()[:limit]
        )
    table = connection.ops.quote_name(model._meta.db_table)
    col = connection.ops.quote_name(column)
    # Identifiers come from the model's metadata, quoted by the backend; no user input.
    sql = (
        f"WITH RECURSIVE t(v) AS ("  # noqa: S608
        f" (SELECT {col} FROM {table} WHERE {col} IS NOT NULL ORDER BY {col} LIMIT 1)"
        f" UNION ALL"
        f" SELECT (SELECT {col} FROM {table} WHERE {col} > t.v ORDER BY {col} LIMIT 1)"
        f" FROM t WHERE t.v IS NOT NULL"
        f") SELECT v FROM t WHERE v IS NOT NULL LIMIT %s"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [limit])
        return [row[0] for row in cursor.fetchall()]


_HEX_PREFIX_RE = re.compile(r"^[0-9a-f]{8,32}$")


def uuid_lookup(term: str, field: str = "pk") -> Q | None:
    """A filter for a full UUID or its first 8+ hex digits (as the lists show ids), else None.

    A prefix becomes a range on the UUID, so it is answered from the primary-key index.
    """
    compact = term.strip().lower().replace("-", "")
    if not _HEX_PREFIX_RE.match(compact):
        return None
    if len(compact) == 32:
        return Q(**{field: uuid.UUID(compact)})
    low = uuid.UUID(compact.ljust(32, "0"))
    high = uuid.UUID(compact.ljust(32, "f"))
    return Q(**{f"{field}__gte": low, f"{field}__lte": high})


class CalendarDrilldownChangeList(ChangeList):
    """A ChangeList whose date hierarchy costs two index probes at any table size.

    Django's own drill-down lists the years, months or days that hold rows with a
    `SELECT DISTINCT date_trunc(...)` over every matching row; this one offers the calendar
    span between the first and the last matching row (MIN/MAX, answered from an index).
    Use it from a template as `cl.date_drilldown` (see templates/admin/audit/auditlog/).
    """

    def date_drilldown(self) -> dict[str, Any]:
        field = self.date_hierarchy
        params = {part: self.params.get(f"{field}__{part}") for part in ("year", "month", "day")}

        def link(filters):
            return self.get_query_string(filters, [f"{field}__"])

        span = self.queryset.aggregate(first=Min(field), last=Max(field))
        if not span["first"]:
            return {"show": bool(params["year"]), "back": {"link": link({}), "title": "All dates"}}
        first, last = (timezone.localtime(span[k]) for k in ("first", "last"))
        year, month, day = params["year"], params["month"], params["day"]
        if not (year or month or day) and first.year == last.year:
            year = first.year
            if first.month == last.month:
                month = first.month
        year_f, month_f, day_f = (f"{field}__year", f"{field}__month", f"{field}__day")
        if year and month and day:
            date = dt.date(int(year), int(month), int(day))
            return {
                "show": True,
                "back": {
                    "link": link({year_f: year, month_f: month}),
                    "title": capfirst(formats.date_format(date, "YEAR_MONTH_FORMAT")),
                },
                "choices": [{"title": capfirst(formats.date_format(date, "MONTH_DAY_FORMAT"))}],
            }
        if year and month:
            days = range(first.day, last.day + 1)
            return {
                "show": True,
                "back": {"link": link({year_f: year}), "title": str(year)},
                "choices": [
                    {
                        "link": link({year_f: year, month_f: month, day_f: d}),
                        "title": capfirst(
                            formats.date_format(
                                dt.date(int(year), int(month), d), "MONTH_DAY_FORMAT"
                            )
                        ),
                    }
                    for d in days
                ],
            }
        if year:
            return {
                "show": True,
                "back": {"link": link({}), "title": "All dates"},
                "choices": [
                    {
                        "link": link({year_f: year, month_f: m}),
                        "title": capfirst(
                            formats.date_format(dt.date(int(year), m, 1), "YEAR_MONTH_FORMAT")
                        ),
                    }
                    for m in range(first.month, last.month + 1)
                ],
            }
        return {
            "show": True,
            "back": None,
            "choices": [
                {"link": link({year_f: str(y)}), "title": str(y)}
                for y in range(first.year, last.year + 1)
            ],
        }
