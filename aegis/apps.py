from django.apps import AppConfig
from django.contrib.admin import apps as admin_apps


class AegisConfig(AppConfig):
    name = "aegis"
    verbose_name = "Access"

    def ready(self) -> None:
        from django.db.backends.signals import connection_created

        from aegis import checks  # noqa: F401  (registers the system checks)
        from aegis.core.db import fast_timestamptz_loader

        connection_created.connect(fast_timestamptz_loader, dispatch_uid="aegis.timestamptz")


class AegisAdminConfig(admin_apps.AdminConfig):
    """`django.contrib.admin` with the back-office's own site (dashboard, branding)."""

    default = False  # listed explicitly in INSTALLED_APPS; AegisConfig stays the default
    default_site = "aegis.admin_site.AegisAdminSite"
