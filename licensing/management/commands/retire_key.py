from django.conf import settings
from django.core.management.base import BaseCommand

from aegis.core import actors
from aegis.core.commands import domain_errors_as_command_errors
from licensing import keys


class Command(BaseCommand):
    help = (
        "Retire a signing key: it stops signing and keeps verifying the licenses it signed. "
        "With --compromised it also stops verifying: its licenses answer UNKNOWN_KEY and "
        "JWKS no longer lists it (re-issue them under the current key)."
    )
    requires_system_checks = []

    def add_arguments(self, parser):
        parser.add_argument("key_id", help="The kid of the key to retire.")
        parser.add_argument(
            "--compromised",
            action="store_true",
            help="The private key leaked: stop verifying its tokens too.",
        )

    def handle(self, *args, key_id, compromised, **options):
        with domain_errors_as_command_errors():
            changed = keys.signing_key_retire(
                actor=actors.for_cli(), key_id=key_id, compromised=compromised
            )
        state = "compromised" if compromised else "retired"
        self.stdout.write(self.style.SUCCESS(f"Key {key_id} is now {state}."))
        for path in changed:
            self.stdout.write(f"  {path}")
        if key_id == settings.KEY_ID:
            self.stdout.write(
                self.style.WARNING(
                    f"{key_id} is the signing key (KEY_ID): no license can be issued until "
                    "KEY_ID names another key (generate_keys --key-id NEW, set KEY_ID, restart)."
                )
            )
