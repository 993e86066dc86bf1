"""The application's metrics move with committed work only, and /metrics serves them with
django-prometheus's request metrics in the Prometheus text format."""

from __future__ import annotations

import pytest
from django.db import transaction
from prometheus_client import REGISTRY
from rest_framework.test import APIClient

from licensing.validation import license_validate

pytestmark = pytest.mark.django_db


def sample(name, **labels) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_issue_counts_once_committed_and_times_signing(
    make_license, django_capture_on_commit_callbacks
):
    issued = sample("aegis_licenses_issued_total", license_type="subscription")
    signed = sample("aegis_signing_seconds_count")
    with django_capture_on_commit_callbacks(execute=True):
        make_license(license_type="subscription", duration_days=30)
    assert sample("aegis_licenses_issued_total", license_type="subscription") == issued + 1
    assert sample("aegis_signing_seconds_count") == signed + 1


def test_a_rolled_back_issue_is_not_counted(make_license, django_capture_on_commit_callbacks):
    """An issue inside a larger transaction that fails afterwards (a bulk import, say)."""
    issued = sample("aegis_licenses_issued_total", license_type="perpetual")
    with (
        django_capture_on_commit_callbacks(execute=True),
        pytest.raises(RuntimeError),
        transaction.atomic(),
    ):
        make_license()
        raise RuntimeError("the enclosing work failed")
    assert sample("aegis_licenses_issued_total", license_type="perpetual") == issued
    with django_capture_on_commit_callbacks(execute=True):
        make_license()
    assert sample("aegis_licenses_issued_total", license_type="perpetual") == issued + 1


def test_validations_are_counted_per_code(make_license, django_capture_on_commit_callbacks):
    token = make_license().token
    valid = sample("aegis_validations_total", code="VALID")
    mismatch = sample("aegis_validations_total", code="MODULE_MISMATCH")
    malformed = sample("aegis_validations_total", code="MALFORMED")
    with django_capture_on_commit_callbacks(execute=True):
        license_validate(token=token, module_name="biz4a_payroll_drc", odoo_version="17.0")
        license_validate(token=token, module_name="biz4a_payroll_drc", odoo_version="18")
        license_validate(token=token, module_name="other_module", odoo_version="17")
        license_validate(token="garbage", module_name="biz4a_payroll_drc", odoo_version="17")
    assert sample("aegis_validations_total", code="VALID") == valid + 2
    assert sample("aegis_validations_total", code="MODULE_MISMATCH") == mismatch + 1
    assert sample("aegis_validations_total", code="MALFORMED") == malformed + 1


def test_metrics_endpoint_serves_the_text_format():
    APIClient().get("/health")
    response = APIClient().get("/metrics")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    text = response.content.decode()
    for line in (
        'aegis_licenses_issued_total{license_type="demo"}',
        'aegis_validations_total{code="FINGERPRINT_MISMATCH"}',
        "aegis_signing_seconds_bucket",
        "django_http_requests_latency_seconds_by_view_method_bucket",
        'django_http_responses_total_by_status_view_method_total{method="GET",status=',
    ):
        assert line in text, line
