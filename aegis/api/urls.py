"""Routes of `/api/v1/`. Paths have no trailing slash in the contract; both forms are
accepted (no redirect, so a POST is never lost)."""

from __future__ import annotations

from django.urls import re_path
from rest_framework.routers import SimpleRouter

from aegis import authentication  # noqa: F401  (registers the API key's OpenAPI scheme)
from aegis.api.stats import AdminStatsView
from aegis.core.api import schema  # noqa: F401  (registers the staff session's scheme)
from audit.api import AuditLogViewSet
from customers.api import CustomerViewSet
from licensing.api import LicenseViewSet

router = SimpleRouter()
router.trailing_slash = "/?"
router.register("licenses", LicenseViewSet, basename="license")
router.register("customers", CustomerViewSet, basename="customer")
router.register("admin/audit-logs", AuditLogViewSet, basename="audit-log")

urlpatterns = [
    re_path(r"^admin/stats/?$", AdminStatsView.as_view(), name="admin-stats"),
    *router.urls,
]
