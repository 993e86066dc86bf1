"""seed_demo_data: real signed licenses, validation rows, refused twice and in production."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from audit.models import AuditLog
from customers.models import Customer
from licensing import signing
from licensing.models import License
from licensing.selectors import license_counts, license_counts_scan
from licensing.verification import Code

pytestmark = pytest.mark.django_db


def test_seed_loads_signed_licenses_and_validation_rows():
    out = StringIO()
    call_command("seed_demo_data", customers=5, licenses=40, audit=300, stdout=out)
    assert "Loaded 5 customers, 40 licenses and 300 audit rows" in out.getvalue()
    assert Customer.objects.count() == 5
    assert License.objects.count() == 40
    assert AuditLog.objects.filter(event_type="license.validated").count() == 300
    assert AuditLog.objects.filter(event_type="demo_data.seeded").count() == 1
    license = License.objects.filter(status="active").first()
    result = signing.verifier().verify_token(license.token)
    assert result.code in {Code.VALID, Code.EXPIRED}
    assert result.claims["jti"] == str(license.id)
    assert result.claims["customer"]["id"] == license.customer_id
    # COPY fires the count triggers too (PostgreSQL): the statistics count what was loaded.
    assert license_counts() == license_counts_scan()


def test_seed_refuses_a_second_load_and_bad_counts():
    call_command("seed_demo_data", customers=1, licenses=1, audit=1, stdout=StringIO())
    with pytest.raises(CommandError, match="already loaded"):
        call_command("seed_demo_data", customers=1, licenses=1, audit=1, stdout=StringIO())
    with pytest.raises(CommandError, match="negative"):
        call_command("seed_demo_data", customers=-1, stdout=StringIO())
    assert License.objects.count() == 1


def test_seed_is_refused_in_production(settings):
    settings.IS_PRODUCTION = True
    with pytest.raises(CommandError, match="production"):
        call_command("seed_demo_data", customers=1, licenses=1, audit=1, stdout=StringIO())
    assert not Customer.objects.exists()
