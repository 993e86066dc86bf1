"""The application's own Prometheus metrics, served with django-prometheus's at `/metrics`.

- `aegis_licenses_issued_total{license_type}`: licenses whose issue committed;
- `aegis_validations_total{code}`: validation answers, per contract code;
- `aegis_activations_total{code}`: activation answers (CONTRACT §9: a new seat, a heartbeat
  or a refusal), per contract code;
- `aegis_signing_seconds`: time to sign one license token (a histogram).

Services call the small functions below; counters move only when the transaction commits
(`transaction.on_commit`), so a rolled-back issue is never counted. The app that owns the
label values (licensing: license types, validation codes) registers them at start-up
(`register_label_values`), so dashboards see zeros rather than gaps.

Under gunicorn every worker is a process: with `PROMETHEUS_MULTIPROC_DIR` set (gunicorn.conf.py
sets it) prometheus_client keeps the values in files there and `/metrics` sums the workers.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from enum import Enum

from django.db import transaction
from prometheus_client import Counter, Histogram

LICENSES_ISSUED = Counter(
    "aegis_licenses_issued_total", "Licenses issued (committed).", ["license_type"]
)
VALIDATIONS = Counter("aegis_validations_total", "Validation answers, by contract code.", ["code"])
ACTIVATIONS = Counter("aegis_activations_total", "Activation answers, by contract code.", ["code"])
SIGNING_SECONDS = Histogram(
    "aegis_signing_seconds",
    "Seconds spent signing one license token.",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
)


def register_label_values(
    *,
    license_types: Iterable[str],
    codes: Iterable[str],
    activation_codes: Iterable[str] = (),
) -> None:
    """Create every label value from the start, so dashboards see zeros rather than gaps:
    the license types, the codes a validation and an activation may answer."""
    for license_type in license_types:
        LICENSES_ISSUED.labels(license_type=license_type)
    for code in codes:
        VALIDATIONS.labels(code=str(code))
    for code in activation_codes:
        ACTIVATIONS.labels(code=str(code))


def _label(code: str | Enum) -> str:
    return str(code.value) if isinstance(code, Enum) else str(code)


def license_issued(license_type: str) -> None:
    """Count one issued license once the current transaction commits."""
    transaction.on_commit(lambda: LICENSES_ISSUED.labels(license_type=license_type).inc())


def validation_recorded(code: str | Enum) -> None:
    """Count one validation answer (once the current transaction, if any, commits)."""
    value = _label(code)
    transaction.on_commit(lambda: VALIDATIONS.labels(code=value).inc())


def validation_counted(code: str | Enum) -> None:
    """Count one validation answer written outside Django's transactions (autocommit)."""
    VALIDATIONS.labels(code=_label(code)).inc()


def activation_recorded(code: str | Enum) -> None:
    """Count one activation answer once the current transaction commits."""
    value = _label(code)
    transaction.on_commit(lambda: ACTIVATIONS.labels(code=value).inc())


@contextmanager
def signing_timer() -> Iterator[None]:
    """Observe the time spent in the block in `aegis_signing_seconds`."""
    started = time.perf_counter()
    try:
        yield
    finally:
        SIGNING_SECONDS.observe(time.perf_counter() - started)
