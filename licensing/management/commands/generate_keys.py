from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from aegis.core import actors
from aegis.core.commands import domain_errors_as_command_errors
from licensing import services


class Command(BaseCommand):
    help = (
        "Generate an Ed25519 signing key pair: <keys-dir>/<key-id>.private.pem (mode 0600) and "
        "<key-id>.public.pem. Never overwrites a key. To rotate, generate a new key id and set KEY_ID."
    )
    # Must run before a signing key exists, which the production system check would refuse.
    requires_system_checks = []

    def add_arguments(self, parser):
        parser.add_argument("--key-id", default=None, help="Key id (kid). Default: KEY_ID.")
        parser.add_argument(
            "--keys-dir",
            default=None,
            type=Path,
            help="Folder for the key files. Default: KEYS_DIR.",
        )
        parser.add_argument(
            "--encrypt",
            action="store_true",
            help="Encrypt the private key with the passphrase in PRIVATE_KEY_PASSPHRASE.",
        )
        parser.add_argument(
            "--if-missing",
            action="store_true",
            help="Do nothing (exit 0) when the key already exists.",
        )

    def handle(self, *args, key_id, keys_dir, encrypt, if_missing, **options):
        key_id = key_id or settings.KEY_ID
        keys_dir = keys_dir or Path(settings.KEYS_DIR)
        passphrase = None
        if encrypt:
            passphrase = settings.PRIVATE_KEY_PASSPHRASE
            if not passphrase:
                raise CommandError("--encrypt needs PRIVATE_KEY_PASSPHRASE in the environment")
        if if_missing and (keys_dir / f"{key_id}.private.pem").exists():
            self.stdout.write(f"Signing key {key_id} already exists in {keys_dir}.")
            return
        with domain_errors_as_command_errors():
            try:
                private_path, public_path = services.signing_key_generate(
                    actor=actors.for_cli(), key_id=key_id, keys_dir=keys_dir, passphrase=passphrase
                )
            except FileExistsError as exc:
                raise CommandError(f"refusing to overwrite existing key file {exc}") from None
        self.stdout.write(self.style.SUCCESS(f"Generated signing key {key_id}"))
        self.stdout.write(f"Private key: {private_path} (mode 0600, keep it secret)")
        self.stdout.write(f"Public key:  {public_path}")
        if key_id != settings.KEY_ID:
            self.stdout.write(f"To sign with it, set KEY_ID={key_id} and restart the server.")
