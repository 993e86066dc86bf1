import json
import os
import secrets
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from aegis.core import actors
from aegis.core.api.scopes import Scope
from aegis.models import APIKey
from aegis.services import api_key_create

CREDENTIALS_FILE = Path(settings.BASE_DIR) / ".dev-credentials.json"


class Command(BaseCommand):
    help = (
        "Development only: create a superuser and an admin API key on first run, and print both "
        "on every run (they are kept in .dev-credentials.json, mode 0600, gitignored)."
    )

    def handle(self, *args, **options):
        if settings.IS_PRODUCTION:
            raise CommandError(
                "bootstrap_dev is for development; use createsuperuser and create_api_key"
            )
        creds = {}
        if CREDENTIALS_FILE.exists():
            creds = json.loads(CREDENTIALS_FILE.read_text())
        User = get_user_model()
        username = creds.setdefault("username", "admin")
        user = User.objects.filter(username=username).first()
        if user is None or "password" not in creds:
            creds["password"] = secrets.token_urlsafe(12)
            if user is None:
                User.objects.create_superuser(username, "admin@example.com", creds["password"])
            else:
                user.set_password(creds["password"])
                user.save(update_fields=["password"])
        prefix = creds.get("api_key", "").partition(".")[0]
        if not prefix or not APIKey.objects.filter(prefix=prefix, revoked=False).exists():
            _, creds["api_key"] = api_key_create(
                actor=actors.for_cli(), name="development", scope=Scope.ADMIN
            )
        fd = os.open(CREDENTIALS_FILE, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(creds, fh)
        self.stdout.write("")
        self.stdout.write(self.style.SUCCESS("AEGIS License Server (development)"))
        self.stdout.write("  Back-office: http://127.0.0.1:8000/admin/")
        self.stdout.write(f"  Login:       {creds['username']} / {creds['password']}")
        self.stdout.write(f"  API key:     {creds['api_key']}   (scope admin, header X-API-Key)")
        self.stdout.write("  API docs:    http://127.0.0.1:8000/docs")
        self.stdout.write("")
