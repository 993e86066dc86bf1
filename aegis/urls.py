from django.contrib import admin
from django.urls import path

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
]
