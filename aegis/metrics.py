"""The application's own Prometheus metrics, served with django-prometheus's at `/metrics`.

- `aegis_licenses_issued_total{license_type}`: licenses whose issue committed;
- `aegis_validations_total{code}`: validation answers, per contract code;
- `aegis_signing_seconds`: time to sign one license token (a histogram).

Services call the small functions below; counters move only when the transaction commits
(`transaction.on_commit`), so a rolled-back issue is never counted.

Under gunicorn every worker is a process: with `PROMETHEUS_MULTIPROC_DIR` set (gunicorn.conf.py
sets it) prometheus_client keeps the values in files there and `/metrics` sums the workers.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from django.db import transaction
from prometheus_client import Counter, Histogram

from licensing.models import LicenseType
from licensing.verification import Code

LICENSES_ISSUED = Counter(
    "aegis_licenses_issued_total", "Licenses issued (committed).", ["license_type"]
)
VALIDATIONS = Counter("aegis_validations_total", "Validation answers, by contract code.", ["code"])
SIGNING_SECONDS = Histogram(
    "aegis_signing_seconds",
    "Seconds spent signing one license token.",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
)

# Every label value from the start, so dashboards see zeros rather than gaps.
for _type in LicenseType.values:
    LICENSES_ISSUED.labels(license_type=_type)
for _code in Code:
    VALIDATIONS.labels(code=_code.value)


def license_issued(license_type: str) -> None:
    """Count one issued license once the current transaction commits."""
    transaction.on_commit(lambda: LICENSES_ISSUED.labels(license_type=license_type).inc())


def validation_recorded(code: str | Code) -> None:
    """Count one validation answer (once the current transaction, if any, commits)."""
    value = code.value if isinstance(code, Code) else str(code)
    transaction.on_commit(lambda: VALIDATIONS.labels(code=value).inc())


def validation_counted(code: str | Code) -> None:
    """Count one validation answer written outside Django's transactions (autocommit)."""
    VALIDATIONS.labels(code=code.value if isinstance(code, Code) else str(code)).inc()


@contextmanager
def signing_timer() -> Iterator[None]:
    """Observe the time spent in the block in `aegis_signing_seconds`."""
    started = time.perf_counter()
    try:
        yield
    finally:
        SIGNING_SECONDS.observe(time.perf_counter() - started)
