import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "aegis.settings")

# Django's WSGI handler (served as is by aegis.asgi, behind its own validate path).
django_application = get_wsgi_application()

from aegis.startup import refuse_unusable_signing_key  # noqa: E402
from licensing.validate_wsgi import ValidateFastPath  # noqa: E402

# For gunicorn's own workers (gthread, sync): the common validate request is answered in
# front of Django's request handling.
application = ValidateFastPath(django_application)

refuse_unusable_signing_key()
