import time

from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError, connections

# pg_advisory_lock key held while migrating ("AEGISMIG" as a signed 64-bit integer).
MIGRATION_LOCK_KEY = int.from_bytes(b"AEGISMIG", "big", signed=True)


class Command(BaseCommand):
    help = (
        "Wait for the database, then apply migrations; on PostgreSQL under an advisory lock, "
        "so that several instances starting at once migrate one after the other (the first "
        "applies them, the others find nothing to do). Used by deploy/entrypoint.sh."
    )
    # A first deployment migrates before its signing key exists (generate_keys writes an
    # audit row, so it needs the tables): the production key check must not stop this.
    # Serving still refuses to start without a usable key (aegis/startup.py).
    requires_system_checks = []

    def add_arguments(self, parser):
        parser.add_argument(
            "--wait",
            type=int,
            default=60,
            metavar="SECONDS",
            help="How long to wait for the database to accept connections (default 60).",
        )
        parser.add_argument("--database", default="default")

    def handle(self, *args, wait, database, **options):
        connection = connections[database]
        self._wait_for(connection, wait)
        if connection.vendor != "postgresql":
            call_command(
                "migrate", database=database, interactive=False, skip_checks=True, verbosity=1
            )
            return
        with connection.cursor() as cursor:
            self.stdout.write("Waiting for the migration lock...")
            cursor.execute("SELECT pg_advisory_lock(%s)", [MIGRATION_LOCK_KEY])
            try:
                call_command(
                    "migrate", database=database, interactive=False, skip_checks=True, verbosity=1
                )
            finally:
                cursor.execute("SELECT pg_advisory_unlock(%s)", [MIGRATION_LOCK_KEY])

    def _wait_for(self, connection, wait: int) -> None:
        deadline = time.monotonic() + max(wait, 0)
        while True:
            try:
                connection.ensure_connection()
                return
            except DatabaseError as exc:
                if time.monotonic() >= deadline:
                    raise CommandError(
                        f"database unreachable after {wait}s: {exc.__class__.__name__}"
                    ) from None
                self.stderr.write("Database not reachable yet; retrying in 1s")
                connection.close()
                time.sleep(1)
