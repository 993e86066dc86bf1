from django.contrib import admin
from django.urls import path

admin.site.site_header = "AEGIS License Server"
admin.site.site_title = "AEGIS License Server"
admin.site.index_title = "Back-office"

urlpatterns = [
    path("admin/", admin.site.urls),
]
