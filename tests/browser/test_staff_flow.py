"""The staff flow end to end in a real browser: log in, create a customer, issue a license
through the form, read and verify its token, revoke it with a reason, find both events in
the audit log, and see the dashboard. Each step leaves a screenshot in
test-artifacts/browser/."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import jwt
import pytest
from django.conf import settings
from playwright.sync_api import expect

from audit.models import AuditLog
from licensing import signing
from licensing.models import License
from licensing.verification import compute_fingerprint
from tests.browser.conftest import ARTIFACTS

pytestmark = pytest.mark.browser

USERNAME = "staff"
PASSWORD = "a-long-staff-password-42"
DB_UUID = "5a7c1e2e-8d7f-11ee-b9d1-0242ac120002"
DOMAIN = "https://erp.kinshasa-payroll.example/web"


def test_staff_issue_verify_revoke_and_audit_a_license(
    live_server, browser_context, django_user_model
):
    django_user_model.objects.create_superuser(USERNAME, "staff@example.com", PASSWORD)
    page = browser_context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    # Console errors include Content-Security-Policy violations (a blocked script or style).
    page.on("console", lambda msg: msg.type == "error" and errors.append(msg.text))
    page.on("response", lambda r: r.status >= 400 and errors.append(f"{r.status} {r.url}"))
    step = iter(range(1, 100))

    def shot(name: str) -> None:
        page.screenshot(path=ARTIFACTS / f"{next(step):02d}-{name}.png", full_page=True)

    def messages() -> str:
        return page.locator("ul.messagelist").inner_text()

    # 1. Log in.
    page.goto(f"{live_server.url}/admin/")
    assert page.title().startswith("Log in")
    page.fill("#id_username", USERNAME)
    page.fill("#id_password", PASSWORD)
    shot("login")
    page.click("input[type=submit]")
    page.wait_for_url(f"{live_server.url}/admin/")
    assert page.locator("#site-name").inner_text().strip() == "AEGIS License Server"
    shot("dashboard-before")

    # 2. Create a customer.
    page.click("tr.model-customer a.addlink")
    page.fill("#id_id", "CUST-042")
    page.fill("#id_name", "Kinshasa Payroll SARL")
    page.fill("#id_email", "it@kinshasa-payroll.example")
    page.fill("#id_company", "Kinshasa Payroll")
    page.click("input[name=_save]")
    assert "was added successfully" in messages()
    shot("customer-created")

    # 3. Issue a license through the form, the customer picked with the autocomplete.
    page.goto(f"{live_server.url}/admin/licensing/license/add/")
    page.click(".field-customer .select2-selection")
    page.fill(".select2-search__field", "Kinshasa")
    page.click(".select2-results__option >> text=CUST-042 — Kinshasa Payroll SARL")
    page.fill("#id_module_name", "biz4a_payroll_drc")
    page.check("input[name=allowed_major_versions][value='17']")
    page.check("input[name=allowed_major_versions][value='18']")
    page.check("input[name=license_type][value='subscription']")
    page.fill("#id_duration_days", "365")
    page.fill("#id_odoo_db_uuid", DB_UUID)
    page.fill("#id_odoo_domain", DOMAIN)
    page.fill("#id_notes", "Issued during the renewal call")
    shot("issue-form")
    page.click("input[value='Issue license']")
    page.wait_for_url(re.compile(r".*/admin/licensing/license/[0-9a-f-]{36}/change/$"))
    assert "License issued to CUST-042" in messages()
    shot("license-issued")

    # 4. Read the token on the license page and verify it with the public key.
    token = page.input_value("#license-token")
    license = License.objects.get()
    assert token == license.token
    public_key = signing.keyring().public_keys[settings.KEY_ID]
    claims = jwt.decode(
        token,
        public_key,
        algorithms=["EdDSA"],
        issuer=settings.LICENSE_ISSUER,
        options={"require": ["jti", "iss", "iat", "exp"]},
    )
    assert claims["jti"] == str(license.pk)
    assert claims["customer"] == {"id": "CUST-042", "name": "Kinshasa Payroll SARL"}
    assert claims["module"] == {
        "technical_name": "biz4a_payroll_drc",
        "allowed_major_versions": ["17", "18"],
    }
    assert claims["license_type"] == "subscription"
    assert claims["instance_fingerprint"] == compute_fingerprint(
        DB_UUID, "erp.kinshasa-payroll.example"
    )
    assert claims["exp"] - claims["iat"] == int(dt.timedelta(days=365).total_seconds())
    assert jwt.get_unverified_header(token)["kid"] == settings.KEY_ID
    claims_table = page.locator(".aegis-claims").inner_text()
    assert str(license.pk) in claims_table
    assert "biz4a_payroll_drc · Odoo 17, 18" in claims_table

    # The copy button puts the token on the clipboard; the download is the same token.
    page.click("#copy-token")
    expect(page.locator("#copy-token")).to_have_text("Copied")
    assert page.evaluate("navigator.clipboard.readText()") == token
    with page.expect_download() as download:
        page.click("#download-token")
    assert download.value.suggested_filename == f"biz4a_payroll_drc-{license.pk}.jwt"
    assert Path(download.value.path()).read_text() == token

    # 5. Revoke it: the confirmation page insists on a reason.
    page.click("#revoke-license")
    assert page.title().startswith("Revoke license")
    shot("revoke-confirmation")
    page.click("#revoke-form input[type=submit]")
    assert "This field is required." in page.locator(".field-reason").inner_text()
    page.fill("#id_reason", "Customer cancelled the contract")
    page.click("#revoke-form input[type=submit]")
    page.wait_for_url(f"{live_server.url}/admin/licensing/license/{license.pk}/change/")
    assert "revoked. Clients see REVOKED from now on." in messages()
    assert page.locator(".field-status_display .aegis-badge").inner_text().lower() == "revoked"
    assert page.locator("#revoke-license").count() == 0
    shot("license-revoked")
    license.refresh_from_db()
    assert (license.status, license.revoked_reason) == (
        "revoked",
        "Customer cancelled the contract",
    )

    # 6. Both events in the audit log, reached from the license page.
    page.click("ul.object-tools >> text=Audit trail")
    rows = page.locator("#result_list tbody tr")
    assert rows.count() == 2
    listed = rows.all_inner_texts()
    assert "license.revoked" in listed[0] and "user:staff" in listed[0]
    assert "license.issued" in listed[1] and "user:staff" in listed[1]
    shot("audit-trail")
    assert set(
        AuditLog.objects.filter(license_id=license.pk).values_list("event_type", "actor")
    ) == {("license.issued", "user:staff"), ("license.revoked", "user:staff")}
    page.click("#result_list tbody tr:first-child th a")
    assert "Customer cancelled the contract" in page.locator("pre.aegis-pre").inner_text()
    shot("audit-entry")

    # 7. The dashboard.
    page.goto(f"{live_server.url}/admin/")

    def card(label: str) -> str:
        return page.locator(f".aegis-card:has-text('{label}') .aegis-card-value").inner_text()

    assert card("Revoked this month") == "1"
    assert card("Active licenses") == "0"
    assert card("Active customers") == "1"
    assert page.locator("svg.validations-chart rect.chart-bar").count() == 30
    assert "license.revoked" in page.locator("#recent-actions-module").inner_text()
    shot("dashboard")

    assert errors == []  # no JavaScript error and no CSP violation on any page
