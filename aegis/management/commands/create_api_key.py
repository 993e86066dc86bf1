from django.core.management.base import BaseCommand

from aegis.core import actors
from aegis.core.api.scopes import Scope
from aegis.core.commands import domain_errors_as_command_errors
from aegis.services import api_key_create


class Command(BaseCommand):
    help = "Create an API key and print it once; only its hash is stored."

    def add_arguments(self, parser):
        parser.add_argument("--name", required=True, help="What the key is for (50 characters).")
        parser.add_argument("--scope", required=True, choices=Scope.values)
        parser.add_argument("--quiet", action="store_true", help="Print the key alone.")

    def handle(self, *args, name, scope, quiet, **options):
        with domain_errors_as_command_errors():
            api_key, raw = api_key_create(actor=actors.for_cli(), name=name, scope=scope)
        if quiet:
            self.stdout.write(raw)
            return
        self.stdout.write(
            f"API key {api_key.name!r} (scope {api_key.scope}, prefix {api_key.prefix}):"
        )
        self.stdout.write(raw)
        self.stdout.write("Store it now: it is not shown again. Send it as the X-API-Key header.")
