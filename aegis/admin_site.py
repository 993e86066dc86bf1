"""The back-office's AdminSite: AEGIS branding and the dashboard on the index page."""

from __future__ import annotations

from django.contrib import admin

SITE_NAME = "AEGIS License Server"


class AegisAdminSite(admin.AdminSite):
    site_header = SITE_NAME
    site_title = SITE_NAME
    index_title = "Back-office"
    # The lists are wide (licenses, audit log); breadcrumbs and the dashboard navigate.
    enable_nav_sidebar = False

    def index(self, request, extra_context=None):
        from aegis.dashboard import dashboard_context  # models are ready by the first request

        return super().index(
            request, extra_context=dashboard_context(request) | (extra_context or {})
        )
