import time

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from aegis.core import actors
from aegis.demo_data import seed_demo_data
from licensing.signing import SigningKeyUnavailable


class Command(BaseCommand):
    help = (
        "Load demo data in bulk (COPY on PostgreSQL): customers DEMO-…, licenses signed by the "
        "current key, and validation audit rows over the last 30 days. For benchmarks and for "
        "trying the back-office at scale; refused in production."
    )

    def add_arguments(self, parser):
        parser.add_argument("--customers", type=int, default=1_000)
        parser.add_argument("--licenses", type=int, default=10_000)
        parser.add_argument("--audit", type=int, default=100_000)
        parser.add_argument("--seed", type=int, default=1, help="Random seed (repeatable data).")

    def handle(self, *args, customers, licenses, audit, seed, **options):
        if settings.IS_PRODUCTION:
            raise CommandError("seed_demo_data is refused with ENVIRONMENT=production")
        if min(customers, licenses, audit) < 0:
            raise CommandError("counts must not be negative")
        started = time.monotonic()

        def progress(label: str, done: int, total: int) -> None:
            pct = done * 100 // max(total, 1)
            bar = "#" * (pct // 4)
            self.stdout.write(f"\r{label:>10} [{bar:<25}] {done:>10,}/{total:,}", ending="")
            if done == total:
                self.stdout.write("")
            self.stdout.flush()

        try:
            counts = seed_demo_data(
                actor=actors.for_cli(),
                customers=customers,
                licenses=licenses,
                audit=audit,
                seed=seed,
                progress=progress,
            )
        except (ValueError, SigningKeyUnavailable) as exc:
            raise CommandError(str(exc)) from None
        elapsed = time.monotonic() - started
        self.stdout.write(
            self.style.SUCCESS(
                f"Loaded {counts['customers']:,} customers, {counts['licenses']:,} licenses and "
                f"{counts['audit']:,} audit rows in {elapsed:.1f} s"
            )
        )
