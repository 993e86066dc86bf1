from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from aegis.core import actors
from aegis.core.commands import domain_errors_as_command_errors
from licensing import keys


class Command(BaseCommand):
    help = (
        "Add a verification-only Ed25519 public key (PEM), e.g. the key of an older server, "
        "as <keys-dir>/<key-id>.public.pem. Tokens whose kid is KEY-ID then verify. "
        "Never overwrites a key and never reuses a key id."
    )
    requires_system_checks = []

    def add_arguments(self, parser):
        parser.add_argument("file", type=Path, help="PEM file holding the public key.")
        parser.add_argument(
            "--key-id", required=True, help="The kid the tokens carry, e.g. aegis-2026-01."
        )

    def handle(self, *args, file, key_id, **options):
        try:
            pem = file.read_bytes()
        except OSError as exc:
            raise CommandError(f"cannot read {file}: {exc.strerror}") from None
        with domain_errors_as_command_errors():
            path = keys.signing_key_import(actor=actors.for_cli(), key_id=key_id, pem=pem)
        self.stdout.write(self.style.SUCCESS(f"Imported verification key {key_id}: {path}"))
