from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError, connection

from audit import rollups
from licensing import counts


class Command(BaseCommand):
    help = (
        "Fold new validation audit rows into the hourly and per-minute counts behind the "
        "statistics, and (PostgreSQL) the license count changes into the license counts. "
        "Safe to run from cron every minute, on several machines at once."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--max-batches",
            type=int,
            default=None,
            help=f"Stop after this many batches of {rollups.BATCH_IDS} audit ids (default: all).",
        )

    def handle(self, *args, max_batches, **options):
        if max_batches is not None and max_batches < 1:
            raise CommandError("--max-batches must be at least 1")
        try:
            moved = rollups.fold(max_batches=max_batches)
            keys = counts.fold() if connection.vendor == "postgresql" else None
        except DatabaseError as exc:
            raise CommandError(
                f"database error: {exc.__class__.__name__}; is the database migrated and reachable?"
            ) from None
        self.stdout.write(f"Folded {moved} audit ids; rollup at id {rollups.watermark()}")
        if keys is not None:
            self.stdout.write(f"Folded license count changes into {keys} counts")
