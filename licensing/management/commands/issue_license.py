import datetime as dt
import json

from django.core.management.base import BaseCommand, CommandError
from django.utils.dateparse import parse_date, parse_datetime

from aegis.core import actors
from aegis.core.commands import domain_errors_as_command_errors
from licensing import services
from licensing.models import LicenseType


def parse_expiry(value: str, option: str = "--expires") -> dt.datetime:
    """An ISO date (end of that day, UTC) or an ISO date-time (UTC when no offset is given);
    a CommandError naming `option` otherwise. Shared by the commands that take an expiry."""
    try:
        day = parse_date(value)
        if day is not None:
            moment = dt.datetime.combine(day, dt.time(23, 59, 59))
        else:
            moment = parse_datetime(value)
            if moment is None:
                raise ValueError
    except ValueError:
        raise CommandError(f"{option}: {value!r} is not an ISO date or date-time") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


class Command(BaseCommand):
    help = "Issue a license through the same service as the API and the admin; prints the token."

    def add_arguments(self, parser):
        parser.add_argument("--customer", required=True, help="Customer id, e.g. CUST-001.")
        parser.add_argument("--module", required=True, help="Odoo technical name of the module.")
        parser.add_argument(
            "--versions", required=True, nargs="+", help="Allowed Odoo major versions, e.g. 17 18."
        )
        parser.add_argument(
            "--type", required=True, choices=LicenseType.values, dest="license_type"
        )
        when = parser.add_mutually_exclusive_group()
        when.add_argument("--days", type=int, help="Duration in days (subscription, demo).")
        when.add_argument("--expires", help="Expiry as an ISO date or date-time (UTC by default).")
        parser.add_argument("--fingerprint", help="Bind to an instance: sha256:<64 hex>.")
        parser.add_argument(
            "--max-instances",
            type=int,
            metavar="N",
            help="Production instances that may hold a seat at once (default: no limit).",
        )
        parser.add_argument(
            "--max-staging-instances",
            type=int,
            metavar="N",
            help="Staging instances (database copies) allowed; default "
            "DEFAULT_MAX_STAGING_INSTANCES.",
        )
        parser.add_argument("--notes", default="", help="Internal notes.")
        parser.add_argument("--json", action="store_true", help="Print the license as JSON.")

    def handle(self, *args, **opts):
        expires_at = parse_expiry(opts["expires"]) if opts["expires"] else None
        with domain_errors_as_command_errors():
            license = services.license_issue(
                actor=actors.for_cli(),
                customer_id=opts["customer"],
                module_name=opts["module"],
                allowed_major_versions=opts["versions"],
                license_type=opts["license_type"],
                duration_days=opts["days"],
                expires_at=expires_at,
                instance_fingerprint=opts["fingerprint"],
                notes=opts["notes"],
                max_instances=opts["max_instances"],
                max_staging_instances=opts["max_staging_instances"],
            )
        if opts["json"]:
            self.stdout.write(
                json.dumps(
                    {
                        "id": str(license.id),
                        "customer_id": license.customer_id,
                        "module_name": license.module_name,
                        "allowed_major_versions": license.allowed_major_versions,
                        "license_type": license.license_type,
                        "issued_at": license.issued_at.isoformat(),
                        "expires_at": license.expires_at.isoformat()
                        if license.expires_at
                        else None,
                        "instance_fingerprint": license.instance_fingerprint,
                        "max_instances": license.max_instances,
                        "max_staging_instances": license.max_staging_instances,
                        "key_id": license.key_id,
                        "token": license.token,
                    },
                    indent=2,
                )
            )
        else:
            self.stdout.write(license.token)
