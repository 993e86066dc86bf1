"""How fast the back-office lists are with 100,000 licenses (or --licenses N).

Creates a throwaway PostgreSQL database, migrates it, loads demo data in bulk
(`seed_demo_data`: COPY, every license a real signed token), then times the license
changelist and the other heavy admin pages in-process with Django's test client as a
superuser: one warm-up request, then --runs timed requests per page; prints the median,
min and max and the number of SQL queries, and writes bench/results/admin_changelist.json.
The database is dropped at the end unless --keep.

    .venv/bin/python bench/admin_changelist.py [--licenses 100000] [--runs 7] [--keep]

The target is a license list page under 1 s; this is a measurement, not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
TARGET_MS = 1000


def psql(sql: str) -> None:
    subprocess.run(
        ["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-qtA", "-c", sql],
        check=True,
    )


def manage(*args: str) -> None:
    proc = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, capture_output=True, text=True
    )
    if proc.returncode != 0:
        raise SystemExit(f"manage.py {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--licenses", type=int, default=100_000)
    parser.add_argument("--customers", type=int, default=2_000)
    parser.add_argument("--audit", type=int, default=100_000, help="validation audit rows")
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--db", default=f"aegis_bench_admin_{os.getpid()}")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    args = parser.parse_args()

    keys = tempfile.mkdtemp(prefix="aegis-bench-keys-")
    os.environ.update(
        {
            "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{args.db}",
            "KEYS_DIR": keys,
            "KEY_ID": "bench-admin",
            "DEBUG": "false",
            "LOG_LEVEL": "WARNING",
            "RATE_LIMIT_ENABLED": "false",
        }
    )
    psql(f"DROP DATABASE IF EXISTS {args.db}")
    psql(f"CREATE DATABASE {args.db}")
    try:
        print(f"[admin-bench] migrating {args.db}", flush=True)
        manage("migrate", "--noinput")
        manage("generate_keys")
        print(
            f"[admin-bench] loading {args.licenses:,} licenses, {args.customers:,} customers, "
            f"{args.audit:,} audit rows",
            flush=True,
        )
        started = time.monotonic()
        manage(
            "seed_demo_data",
            f"--licenses={args.licenses}",
            f"--customers={args.customers}",
            f"--audit={args.audit}",
        )
        print(f"[admin-bench] loaded in {time.monotonic() - started:.0f} s", flush=True)
        # What autovacuum does to a loaded table soon after: statistics and the visibility
        # map (index-only scans for the dashboard's counts).
        psql_db(args.db, "VACUUM ANALYZE")
        results = measure(args.runs)
    finally:
        if not args.keep:
            subprocess.run(
                [
                    "psql",
                    "-h",
                    "127.0.0.1",
                    "-U",
                    "postgres",
                    "-qtA",
                    "-c",
                    f"DROP DATABASE IF EXISTS {args.db} WITH (FORCE)",
                ],
                check=False,
            )
    report(results, args)


def psql_db(db: str, sql: str) -> None:
    subprocess.run(
        ["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", db, "-qtA", "-c", sql], check=True
    )


def measure(runs: int) -> list[dict]:
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "aegis.settings")
    import warnings

    import django

    # whitenoise notes the absent collectstatic folder; irrelevant to this measurement.
    warnings.filterwarnings("ignore", message="No directory at")
    django.setup()
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from customers.models import Customer
    from licensing.models import License

    user = get_user_model().objects.create_superuser("bench", "bench@example.com", "x" * 20)
    client = Client()
    client.force_login(user)
    license = License.objects.order_by("-issued_at").first()
    customer = Customer.objects.order_by("pk").first()
    pages = [
        ("licenses: list, page 1", "/admin/licensing/license/"),
        ("licenses: status=active", "/admin/licensing/license/?status=active"),
        ("licenses: expiring within 30 days", "/admin/licensing/license/?expiring=30"),
        ("licenses: module filter", "/admin/licensing/license/?module=biz4a_payroll_drc"),
        ("licenses: search customer id", f"/admin/licensing/license/?q={customer.pk}"),
        ("licenses: search id prefix", f"/admin/licensing/license/?q={str(license.pk)[:8]}"),
        ("licenses: page 1000", "/admin/licensing/license/?p=1000"),
        ("licenses: sorted by expiry", "/admin/licensing/license/?o=7"),
        ("license: change page", f"/admin/licensing/license/{license.pk}/change/"),
        ("license: issue form", "/admin/licensing/license/add/"),
        ("customers: list", "/admin/customers/customer/"),
        ("audit log: list", "/admin/audit/auditlog/"),
        ("dashboard", "/admin/"),
    ]
    results = []
    for name, url in pages:
        response = client.get(url)  # warm-up: templates, caches, connection
        if response.status_code != 200:
            raise SystemExit(f"{url} answered {response.status_code}")
        timings = []
        for _ in range(runs):
            with CaptureQueriesContext(connection) as queries:
                started = time.perf_counter()
                response = client.get(url)
                timings.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200, url
        results.append(
            {
                "page": name,
                "url": url,
                "median_ms": round(statistics.median(timings), 1),
                "min_ms": round(min(timings), 1),
                "max_ms": round(max(timings), 1),
                "queries": len(queries),
            }
        )
    results.append({"licenses": License.objects.count()})
    return results


def report(results: list[dict], args) -> None:
    *pages, total = results
    print()
    print(f"Admin pages with {total['licenses']:,} licenses ({args.runs} runs each, PostgreSQL)")
    print(f"{'page':<36} {'median':>9} {'min':>9} {'max':>9} {'queries':>8}")
    for row in pages:
        print(
            f"{row['page']:<36} {row['median_ms']:>6.1f} ms {row['min_ms']:>6.1f} ms "
            f"{row['max_ms']:>6.1f} ms {row['queries']:>8}"
        )
    headline = pages[0]["median_ms"]
    verdict = "under" if headline < TARGET_MS else "OVER"
    print(f"\nLicense list page 1: {headline:.1f} ms median, {verdict} the {TARGET_MS} ms target.")
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / "admin_changelist.json"
    out.write_text(json.dumps({"licenses": total["licenses"], "pages": pages}, indent=2) + "\n")
    print(f"Written to {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
