from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError

from audit import chain


class Command(BaseCommand):
    help = (
        "Verify the audit trail's hash chain, oldest row first. Prints OK with the number of "
        "rows and the head (record it outside the database), or names the first broken row "
        "and exits non-zero."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--database", default="default", help="Database alias to read (default: default)."
        )
        parser.add_argument(
            "--expect-head",
            metavar="SEQ:HASH",
            help="A head recorded earlier: fail unless the chain still contains it unchanged.",
        )

    def handle(self, *args, database, expect_head, **options):
        try:
            verdict = chain.verify(using=database)
        except DatabaseError as exc:
            raise CommandError(
                f"database error: {exc.__class__.__name__}; is the database migrated and reachable?"
            ) from None
        if not verdict.ok:
            raise CommandError(
                f"audit chain BROKEN at row id={verdict.broken_id}: {verdict.reason} "
                f"({verdict.count} rows verified before it)"
            )
        if expect_head:
            self._check_recorded_head(expect_head, database, verdict)
        self.stdout.write(
            self.style.SUCCESS(
                f"OK: {verdict.count} chained audit rows verified; "
                f"head seq={verdict.head_seq} hash={verdict.head_hash}"
            )
        )

    def _check_recorded_head(self, expect_head: str, database: str, verdict) -> None:
        seq_text, _, digest = expect_head.partition(":")
        if not seq_text.isdigit() or len(digest) != 64:
            raise CommandError("--expect-head must look like SEQ:HASH (a head printed earlier)")
        seq = int(seq_text)
        if seq > verdict.head_seq:
            raise CommandError(
                f"audit chain TRUNCATED: recorded head seq={seq} but the chain ends at "
                f"seq={verdict.head_seq}"
            )
        from audit.models import AuditLog

        stored = (
            AuditLog.objects.using(database)
            .filter(chain_seq=seq)
            .values_list("hash", flat=True)
            .first()
        )
        if stored != digest:
            raise CommandError(f"audit chain REWRITTEN: row seq={seq} no longer has that hash")
