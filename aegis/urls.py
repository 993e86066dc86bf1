from django.contrib import admin
from django.urls import include, path, re_path
from django_prometheus.exports import ExportToDjangoView
from drf_spectacular.views import (
    SpectacularAPIView,
    SpectacularRedocView,
    SpectacularSwaggerSplitView,
)

from aegis.views import HealthView, InfoView
from licensing import views_public

admin.site.site_header = "AEGIS License Server"
admin.site.site_title = "AEGIS License Server"
admin.site.index_title = "Back-office"

urlpatterns = [
    # Public documents for offline clients; before any `api/v1/` include so they win.
    path(".well-known/jwks.json", views_public.JWKSView.as_view(), name="jwks"),
    path(
        "api/v1/licenses/revocations",
        views_public.RevocationListView.as_view(),
        name="license-revocations",
    ),
    path("admin/", admin.site.urls),
    path("api/v1/", include("aegis.api.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    # The split view serves its start-up script as a file (/docs?script): no inline script,
    # so the Content-Security-Policy needs no exception for it.
    re_path(r"^docs/?$", SpectacularSwaggerSplitView.as_view(url_name="schema"), name="swagger-ui"),
    re_path(r"^redoc/?$", SpectacularRedocView.as_view(url_name="schema"), name="redoc"),
    re_path(r"^health/?$", HealthView.as_view(), name="health"),
    re_path(r"^info/?$", InfoView.as_view(), name="info"),
    # Prometheus text format; every gunicorn worker's values (aegis/core/metrics.py).
    path("metrics", ExportToDjangoView, name="metrics"),
]

# JSON error bodies under /api (CONTRACT §6), Django's pages elsewhere.
handler404 = "aegis.core.api.exceptions.handler404"
handler500 = "aegis.core.api.exceptions.handler500"
