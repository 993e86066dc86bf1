from django.core.management.base import BaseCommand

from aegis.core import actors
from aegis.core.commands import domain_errors_as_command_errors
from licensing import services


class Command(BaseCommand):
    help = "Revoke a license (same service as the API and the admin). A reason is required."

    def add_arguments(self, parser):
        parser.add_argument("license_id", help="The license id (the token's jti).")
        parser.add_argument("--reason", required=True, help="Why the license is revoked.")

    def handle(self, *args, license_id, reason, **options):
        with domain_errors_as_command_errors():
            license = services.license_revoke(
                actor=actors.for_cli(), license_id=license_id, reason=reason
            )
        self.stdout.write(
            self.style.SUCCESS(f"Revoked license {license.id} at {license.revoked_at.isoformat()}")
        )
