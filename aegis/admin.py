from django.contrib import admin
from rest_framework_api_key.models import APIKey as LibraryAPIKey

# The library's own concrete model is unused: our scoped `aegis.APIKey` replaces it.
if admin.site.is_registered(LibraryAPIKey):
    admin.site.unregister(LibraryAPIKey)
