"""The WSGI application (`gunicorn aegis.wsgi:application`, gunicorn's own workers): Django
as it is. aegis.asgi serves this same application behind its validate transport."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "aegis.settings")

application = get_wsgi_application()

from aegis.startup import refuse_unusable_signing_key  # noqa: E402

refuse_unusable_signing_key()
