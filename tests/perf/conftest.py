import pytest
from django.core.cache import cache

from tests.api.conftest import make_key  # noqa: F401  (API keys of each scope)


@pytest.fixture(autouse=True)
def _empty_cache():
    """Throttle counters live in the cache: no test is throttled by another's requests."""
    cache.clear()
    yield
    cache.clear()


def last_audit() -> dict:
    """The newest audit row, without what differs between two equal requests (id, time,
    request id)."""
    from audit.models import AuditLog

    return comparable_audit(AuditLog.objects.latest("id"))


def comparable_audit(row) -> dict:
    """An audit row without what differs between two equal requests."""
    return {
        "event_type": row.event_type,
        "actor": row.actor,
        "license_id": row.license_id,
        "customer_id": row.customer_id,
        "module_name": row.module_name,
        "ip": None if row.ip is None else str(row.ip),
        "event_data": row.event_data,
    }


@pytest.fixture
def service_runs(monkeypatch) -> list:
    """The calls of the validation service by the DRF action (a spy: the real service runs)."""
    from licensing import api

    runs = []
    service = api.license_validate

    def counted(**fields):
        runs.append(fields)
        return service(**fields)

    monkeypatch.setattr(api, "license_validate", counted)
    return runs
