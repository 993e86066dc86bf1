from django.core.management.base import BaseCommand

from aegis.core import actors
from aegis.core.commands import domain_errors_as_command_errors
from licensing import successors
from licensing.management.commands.issue_license import parse_expiry


class Command(BaseCommand):
    help = (
        "Renew a subscription or demo license: issue its successor (a new license id and "
        "token) expiring --days after the current expiry (after now when it has passed), or "
        "at --expires-at. The old license stays valid until its own expiry. Prints the new "
        "token on the last line."
    )

    def add_arguments(self, parser):
        parser.add_argument("license_id", help="The license id (the token's jti).")
        when = parser.add_mutually_exclusive_group()
        when.add_argument("--days", type=int, help="Days added to the current expiry.")
        when.add_argument(
            "--expires-at",
            help="The new expiry as an ISO date or date-time (UTC by default), later than "
            "the current one.",
        )

    def handle(self, *args, license_id, days, expires_at, **options):
        new_expiry = parse_expiry(expires_at, "--expires-at") if expires_at else None
        with domain_errors_as_command_errors():
            license = successors.license_renew(
                actor=actors.for_cli(),
                license_id=license_id,
                duration_days=days,
                expires_at=new_expiry,
            )
        self.stdout.write(
            self.style.SUCCESS(
                f"Renewed license {license.replaces_id}: license {license.id} expires "
                f"{license.expires_at.isoformat()}"
            )
        )
        self.stdout.write(license.token)
