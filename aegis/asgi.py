import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "aegis.settings")

application = get_asgi_application()

from aegis.startup import refuse_unusable_signing_key  # noqa: E402

refuse_unusable_signing_key()
