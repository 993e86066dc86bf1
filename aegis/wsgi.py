import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "aegis.settings")

application = get_wsgi_application()

from aegis.startup import refuse_unusable_signing_key  # noqa: E402

refuse_unusable_signing_key()
