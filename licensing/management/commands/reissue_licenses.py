from django.core.management.base import BaseCommand, CommandError

from aegis.core import actors
from aegis.core.commands import domain_errors_as_command_errors
from licensing import successors


class Command(BaseCommand):
    help = (
        "Re-issue every active license signed by --key-id (a retired or compromised key) "
        "under the current signing key (KEY_ID): each gets a successor with the same terms "
        "and is revoked, one transaction per license. Safe to run again: what was re-issued "
        "is not selected twice. A license changed meanwhile (revoked, replaced, expired) is "
        "skipped and named."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--key-id", required=True, metavar="OLD", help="The kid whose licenses to re-issue."
        )
        parser.add_argument(
            "--reason", help="Recorded on each revoked license. Default: names both keys."
        )
        parser.add_argument(
            "--progress-every",
            type=int,
            default=100,
            metavar="N",
            help="Print a progress line every N licenses (default 100).",
        )

    def handle(self, *args, key_id, reason, progress_every, **options):
        if progress_every < 1:
            raise CommandError("--progress-every must be at least 1")

        def progress(done: int, total: int) -> None:
            if done % progress_every == 0 or done == total:
                self.stdout.write(f"... {done}/{total} licenses")

        with domain_errors_as_command_errors():
            report = successors.licenses_reissue(
                actor=actors.for_cli(), key_id=key_id, reason=reason, progress=progress
            )
        for license_id, why in report.skipped.items():
            self.stdout.write(self.style.WARNING(f"skipped {license_id}: {why}"))
        self.stdout.write(
            self.style.SUCCESS(
                f"{report.total} active licenses signed by {report.key_id}: "
                f"{report.reissued} re-issued under {report.signing_key_id}, "
                f"{len(report.skipped)} skipped."
            )
        )
