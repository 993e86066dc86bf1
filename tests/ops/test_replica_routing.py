"""Replica routing, proved against two separate databases: a child pytest runs
tests/ops/replica_routing_checks.py with DATABASE_REPLICA_URL pointing at a second database
(on PostgreSQL a second database on the same server, `<name>_replica`; on SQLite a second
file), without the test-time mirroring the settings apply otherwise."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from django.db import connection

ROOT = Path(__file__).resolve().parents[2]


def _url(name: str) -> str:
    s = connection.settings_dict
    auth = s["USER"] + (f":{s['PASSWORD']}" if s["PASSWORD"] else "")
    return f"postgres://{auth}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{name}"


def test_replica_routing_against_two_databases(tmp_path):
    env = dict(os.environ)
    if connection.vendor == "postgresql":
        base = connection.settings_dict["NAME"].removeprefix("test_")
        # The child's test databases: test_<base>_router and test_<base>_replica.
        env["DATABASE_URL"] = _url(f"{base}_router")
        env["DATABASE_REPLICA_URL"] = _url(f"{base}_replica")
    else:
        env.pop("DATABASE_URL", None)
        env["DATABASE_REPLICA_URL"] = f"sqlite:///{tmp_path / 'replica.sqlite3'}"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "tests/ops/replica_routing_checks.py",
            "--ds=tests.ops.replica_settings",
            "--create-db",
            "-p",
            "no:cacheprovider",
            "-q",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr[-3000:]
    assert "6 passed" in proc.stdout, proc.stdout[-2000:]
