"""The back-office dashboard: the figures staff look at first, a validations chart and an
activations chart.

`dashboard_context(request)` feeds `templates/admin/index.html`; each panel appears only to
users allowed to see the records behind it. The chart is inline SVG drawn here, on the
server: no JavaScript, no CDN.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any
from urllib.parse import urlencode

from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from audit.models import AuditLog
from audit.selectors import validation_counts, validations_per_day
from customers.models import Customer
from licensing.models import License
from licensing.selectors import activations_per_day, license_counts, seats_in_use
from licensing.verification import Code

EXPIRING_DAYS = 30
CHART_DAYS = 30
RECENT_EVENTS = 8


def _month_bounds(now: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
    start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    end = (start + dt.timedelta(days=32)).replace(day=1)
    return start, end


def dashboard_context(request) -> dict[str, Any]:
    user = request.user
    now = timezone.now()
    context: dict[str, Any] = {"dashboard_cards": []}
    cards = context["dashboard_cards"]
    if user.has_perm("licensing.view_license"):
        licenses_url = reverse("admin:licensing_license_changelist")
        month_start, month_end = _month_bounds(now)
        active = License.objects.active(now)
        cards += [
            {
                "label": "Active licenses",
                # The kept counts on PostgreSQL: no count of half a million rows per view.
                "value": license_counts(now=now).active,
                "url": f"{licenses_url}?status=active",
                "tone": "ok",
            },
            {
                "label": f"Expiring within {EXPIRING_DAYS} days",
                "value": active.filter(
                    expires_at__lte=now + dt.timedelta(days=EXPIRING_DAYS)
                ).count(),
                "url": f"{licenses_url}?expiring={EXPIRING_DAYS}",
                "tone": "warn",
            },
            {
                "label": "Revoked this month",
                "value": License.objects.revoked()
                .filter(revoked_at__gte=month_start, revoked_at__lt=month_end)
                .count(),
                # The same parameters as the list's "Revoked: This month" filter.
                "url": licenses_url
                + "?"
                + urlencode(
                    {"revoked_at__gte": str(month_start), "revoked_at__lt": str(month_end)}
                ),
                "tone": "bad",
            },
        ]
        seats = seats_in_use(now=now)
        cards.append(
            {
                "label": "Seats in use",
                "value": sum(seats.values()),
                "url": reverse("admin:licensing_activation_changelist") + "?status=active",
                "tone": "neutral",
            }
        )
        series = activations_per_day(days=CHART_DAYS)
        context["activations_chart"] = validations_chart(series, noun="activation")
        context["activations_30d_total"] = sum(n for _, n in series)
        context["seats_in_use"] = seats
    if user.has_perm("customers.view_customer"):
        cards.append(
            {
                "label": "Active customers",
                "value": Customer.objects.filter(is_active=True).count(),
                "url": reverse("admin:customers_customer_changelist") + "?active=yes",
                "tone": "neutral",
            }
        )
    if user.has_perm("audit.view_auditlog"):
        counts = validation_counts(since=now - dt.timedelta(hours=24))
        total = sum(counts.values())
        order = {code.value: i for i, code in enumerate(Code)}
        context["validations_24h"] = {
            "total": total,
            "rows": [
                {
                    "code": code,
                    "count": n,
                    "share": round(100 * n / total) if total else 0,
                    "ok": code == Code.VALID,
                }
                for code, n in sorted(counts.items(), key=lambda kv: (-kv[1], order.get(kv[0], 99)))
            ],
        }
        series = validations_per_day(days=CHART_DAYS)
        context["validations_chart"] = validations_chart(series)
        context["validations_30d_total"] = sum(n for _, n in series)
        # State changes are the chained rows (audit/chain.py): newest first straight from the
        # chain's index, however many validation rows were written since.
        context["recent_events"] = list(
            AuditLog.objects.filter(chain_seq__isnull=False).order_by("-chain_seq")[:RECENT_EVENTS]
        )
        context["audit_url"] = reverse("admin:audit_auditlog_changelist")
    return context


def _nice_ceiling(value: int) -> int:
    """The smallest of 1, 2, 5 × 10^k that is >= value (axis maximum), at least 4."""
    if value <= 4:
        return 4
    exponent = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 5, 10):
        if step * exponent >= value:
            return step * exponent
    return 10 * exponent  # pragma: no cover - the loop always returns


def _n(value: float) -> str:
    return f"{value:.1f}"


def validations_chart(series: list[tuple[dt.date, int]], *, noun: str = "validation") -> SafeString:
    """A bar chart of `noun`s (validations, activations) per day as inline, accessible SVG."""
    width, height = 720, 220
    left, right, top, bottom = 48, 12, 12, 28
    plot_w, plot_h = width - left - right, height - top - bottom
    peak = max((n for _, n in series), default=0)
    y_max = _nice_ceiling(peak)
    slot = plot_w / max(len(series), 1)
    bar_w = max(slot * 0.7, 1)

    grid = []
    for i in range(5):
        value = y_max * i // 4
        y = top + plot_h - plot_h * value / y_max
        grid.append(
            format_html(
                '<line class="chart-grid" x1="{}" x2="{}" y1="{}" y2="{}"></line>'
                '<text class="chart-label" x="{}" y="{}" text-anchor="end">{}</text>',
                left,
                width - right,
                _n(y),
                _n(y),
                left - 6,
                _n(y + 4),
                f"{value:,}",
            )
        )
    bars = []
    for i, (day, n) in enumerate(series):
        x = left + i * slot + (slot - bar_w) / 2
        h = plot_h * n / y_max
        label = f"{day:%a %d %b %Y}: {n:,} {noun}{'s' if n != 1 else ''}"
        bars.append(
            format_html(
                '<rect class="chart-bar" x="{}" y="{}" width="{}" height="{}" '
                'rx="2"><title>{}</title></rect>',
                _n(x),
                _n(top + plot_h - h),
                _n(bar_w),
                _n(max(h, 0)),
                label,
            )
        )
        if i % 5 == 0 or i == len(series) - 1:
            bars.append(
                format_html(
                    '<text class="chart-label" x="{}" y="{}" text-anchor="middle">{}</text>',
                    _n(x + bar_w / 2),
                    height - 8,
                    f"{day:%d %b}",
                )
            )
    empty = ""
    if peak == 0:
        empty = format_html(
            '<text class="chart-empty" x="{}" y="{}" text-anchor="middle">{}</text>',
            _n(left + plot_w / 2),
            _n(top + plot_h / 2),
            f"No {noun}s in the last {len(series)} days",
        )
    summary = (
        f"{noun.capitalize()}s per day over the last {len(series)} days, at most {peak:,} a day"
    )
    return format_html(
        '<svg class="{}s-chart" viewBox="0 0 {} {}" role="img" aria-label="{}" '
        'preserveAspectRatio="xMidYMid meet">{}{}{}</svg>',
        noun,
        width,
        height,
        summary,
        format_html_join("", "{}", ((line,) for line in grid)),
        format_html_join("", "{}", ((bar,) for bar in bars)),
        empty,
    )
