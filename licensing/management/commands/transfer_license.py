from django.core.management.base import BaseCommand

from aegis.core import actors
from aegis.core.commands import domain_errors_as_command_errors
from licensing import successors


class Command(BaseCommand):
    help = (
        "Transfer a license to another Odoo instance: issue its successor bound to the new "
        "instance (--fingerprint, or --db-uuid and --domain) and revoke the old license with "
        "--reason, in one transaction. Prints the new token on the last line."
    )

    def add_arguments(self, parser):
        parser.add_argument("license_id", help="The license id (the token's jti).")
        parser.add_argument("--fingerprint", help="The new instance: sha256:<64 hex>.")
        parser.add_argument("--db-uuid", help="The new instance's database.uuid (with --domain).")
        parser.add_argument(
            "--domain", help="The new instance's web.base.url or host[:port] (with --db-uuid)."
        )
        parser.add_argument("--reason", required=True, help="Why the license moves.")

    def handle(self, *args, license_id, fingerprint, db_uuid, domain, reason, **options):
        with domain_errors_as_command_errors():
            license = successors.license_transfer(
                actor=actors.for_cli(),
                license_id=license_id,
                reason=reason,
                instance_fingerprint=fingerprint,
                instance_db_uuid=db_uuid,
                instance_domain=domain,
            )
        self.stdout.write(
            self.style.SUCCESS(
                f"Transferred license {license.replaces_id} (now revoked): license {license.id} "
                f"is bound to {license.instance_fingerprint}"
            )
        )
        self.stdout.write(license.token)
