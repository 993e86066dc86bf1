"""Renew… and Transfer… in the back-office, the chain on the license page, and the seats of
the issue form: the admin is one more door onto licensing.successors and licensing.services,
so what it writes is what the service writes, with actor `user:<username>`."""

from __future__ import annotations

import datetime as dt

import pytest
from django.urls import reverse

from licensing import successors
from licensing.models import License, LicenseStatus
from licensing.services import license_revoke
from licensing.verification import compute_fingerprint
from tests.admin.conftest import form_errors, messages_of
from tests.admin.test_licenses import (
    AUDIT_VOLATILE,
    LICENSE_VOLATILE,
    issue_form,
    last_audit_id,
    new_rows,
    row,
)
from tests.conftest import ACTOR

pytestmark = pytest.mark.django_db
ADD = reverse("admin:licensing_license_add")
DB_UUID = "7d2c1f00-1111-4a4b-9a4b-0242ac120099"
DOMAIN = "odoo.acme.example"
NEW_FP = compute_fingerprint(DB_UUID, DOMAIN)


def change_url(license) -> str:
    return reverse("admin:licensing_license_change", args=[license.pk])


def renew_url(license) -> str:
    return reverse("admin:licensing_license_renew", args=[license.pk])


def transfer_url(license) -> str:
    return reverse("admin:licensing_license_transfer", args=[license.pk])


def transfer_form(**overrides) -> dict:
    return {
        "instance_fingerprint": "",
        "odoo_db_uuid": DB_UUID,
        "odoo_domain": DOMAIN,
        "reason": "New server",
    } | overrides


@pytest.fixture
def subscription(make_license):
    return make_license(license_type="subscription", duration_days=30, notes="yearly")


# --- the actions on the license page -------------------------------------------------------


def test_the_license_page_offers_renew_and_transfer_when_they_apply(boss, make_license):
    subscription = make_license(license_type="subscription", duration_days=30)
    perpetual = make_license()
    revoked = make_license(license_type="subscription", duration_days=30)
    license_revoke(actor=ACTOR, license_id=revoked.pk, reason="r")

    page = boss.get(change_url(subscription)).content.decode()
    assert f'<a href="{renew_url(subscription)}" id="renew-license">Renew…</a>' in page
    assert f'<a href="{transfer_url(subscription)}" id="transfer-license">Transfer…</a>' in page
    page = boss.get(change_url(perpetual)).content.decode()
    assert 'id="renew-license"' not in page and 'id="transfer-license"' in page
    page = boss.get(change_url(revoked)).content.decode()
    assert 'id="renew-license"' not in page and 'id="transfer-license"' not in page


def test_renewing_through_the_admin_writes_what_the_service_writes(boss, make_license):
    first = make_license(license_type="subscription", duration_days=30, notes="yearly")
    second = make_license(license_type="subscription", duration_days=30, notes="yearly")
    page = boss.get(renew_url(first))
    assert page.status_code == 200
    assert b"Issue the renewal" in page.content

    before = last_audit_id()
    response = boss.post(renew_url(first), {"duration_days": "365", "expires_on": ""})
    assert response.status_code == 302, form_errors_of(response)
    via_admin = License.objects.get(replaces=first)
    assert response["Location"] == change_url(via_admin)
    admin_rows = new_rows(before)

    before = last_audit_id()
    direct = successors.license_renew(actor="user:boss", license_id=second.pk, duration_days=365)
    direct_rows = new_rows(before)

    volatile = LICENSE_VOLATILE | {"replaces", "expires_at"}
    assert row(via_admin, volatile) == row(direct, volatile)
    assert via_admin.expires_at == first.expires_at + dt.timedelta(days=365)
    audit_volatile = AUDIT_VOLATILE | {"event_data"}
    assert [row(r, audit_volatile) for r in admin_rows] == [
        row(r, audit_volatile) for r in direct_rows
    ]
    assert [(r.event_type, r.actor, r.license_id) for r in admin_rows] == [
        ("license.issued", "user:boss", via_admin.pk),
        ("license.renewed", "user:boss", first.pk),
    ]
    assert admin_rows[1].event_data["successor"] == str(via_admin.pk)
    follow = boss.get(response["Location"])
    assert messages_of(follow) == [
        f"License {first.pk} renewed: license {via_admin.pk} expires on "
        f"{via_admin.expires_at:%Y-%m-%d %H:%M} UTC. Send the customer its token."
    ]


def test_renewing_to_a_date(boss, subscription):
    day = (subscription.expires_at + dt.timedelta(days=60)).date()
    response = boss.post(renew_url(subscription), {"duration_days": "", "expires_on": day})
    assert response.status_code == 302, form_errors_of(response)
    new = License.objects.get(replaces=subscription)
    assert new.expires_at == dt.datetime.combine(day, dt.time(23, 59, 59), tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        ({"expires_on": "2001-01-01"}, "expires_on", "future"),
        ({"expires_on": "TODAY"}, "expires_on", "cannot shorten"),
        ({"duration_days": "0"}, "duration_days", "greater than or equal to 1"),
        ({}, "duration_days", "A subscription needs duration_days or expires_at."),
        ({"duration_days": "10", "expires_on": "NEXT_YEAR"}, "expires_on", "not both"),
    ],
)
def test_a_bad_renewal_shows_the_error_on_its_field_and_writes_nothing(
    boss, subscription, data, field, message
):
    days = {
        "TODAY": subscription.expires_at.date() - dt.timedelta(days=1),
        "NEXT_YEAR": subscription.expires_at.date() + dt.timedelta(days=365),
    }
    data = {"duration_days": "", "expires_on": ""} | {k: days.get(v, v) for k, v in data.items()}
    before = last_audit_id()
    response = boss.post(renew_url(subscription), data)
    assert response.status_code == 200
    errors = form_errors_of(response)
    assert any(message in error for error in errors.get(field, [])), errors
    assert new_rows(before) == [] and License.objects.count() == 1


def test_a_license_that_cannot_be_renewed_says_why(boss, make_license, subscription):
    perpetual = make_license()
    page = boss.get(renew_url(perpetual)).content.decode()
    assert f"License {perpetual.pk} is perpetual; it never expires." in page
    assert 'id="successor-form"' not in page
    new = successors.license_renew(actor=ACTOR, license_id=subscription.pk, duration_days=1)
    before = last_audit_id()
    response = boss.post(renew_url(subscription), {"duration_days": "30", "expires_on": ""})
    assert response.status_code == 200
    assert f"was already replaced by license {new.pk}" in response.content.decode()
    assert new_rows(before) == []


def test_transferring_through_the_admin(boss, subscription):
    page = boss.get(transfer_url(subscription))
    assert page.status_code == 200 and b"Transfer and revoke this license" in page.content
    before = last_audit_id()
    response = boss.post(transfer_url(subscription), transfer_form())
    assert response.status_code == 302, form_errors_of(response)
    new = License.objects.get(replaces=subscription)
    assert response["Location"] == change_url(new)
    assert new.instance_fingerprint == NEW_FP
    assert new.expires_at == subscription.expires_at
    subscription.refresh_from_db()
    assert (subscription.status, subscription.revoked_reason, subscription.replaced_by_id) == (
        LicenseStatus.REVOKED,
        "New server",
        new.pk,
    )
    assert [(r.event_type, r.actor, r.license_id) for r in new_rows(before)] == [
        ("license.revoked", "user:boss", subscription.pk),
        ("license.issued", "user:boss", new.pk),
        ("license.transferred", "user:boss", subscription.pk),
    ]
    assert messages_of(boss.get(response["Location"])) == [
        f"License {subscription.pk} transferred and revoked: license {new.pk} is bound to "
        f"{NEW_FP}. Send the customer its token."
    ]


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        ({"odoo_db_uuid": "", "odoo_domain": ""}, "instance_fingerprint", "Give the new instance"),
        ({"odoo_domain": ""}, "odoo_domain", "Give the domain"),
        ({"instance_fingerprint": NEW_FP}, "instance_fingerprint", "not both"),
        ({"odoo_db_uuid": DB_UUID.upper()}, "odoo_db_uuid", "lowercase"),
        ({"reason": "  "}, "reason", "required"),
    ],
)
def test_a_bad_transfer_shows_the_error_on_its_field_and_writes_nothing(
    boss, subscription, data, field, message
):
    before = last_audit_id()
    response = boss.post(transfer_url(subscription), transfer_form(**data))
    assert response.status_code == 200
    errors = form_errors_of(response)
    assert any(message in error for error in errors.get(field, [])), errors
    assert new_rows(before) == [] and License.objects.count() == 1
    subscription.refresh_from_db()
    assert subscription.status == LicenseStatus.ACTIVE


def test_transferring_to_the_same_instance_is_refused(boss, make_license):
    bound = make_license(instance_fingerprint=NEW_FP)
    response = boss.post(transfer_url(bound), transfer_form())
    assert form_errors_of(response) == {
        "instance_fingerprint": [f"License {bound.pk} is already bound to this instance."]
    }


@pytest.mark.parametrize(
    ("who", "renew", "transfer"),
    [("manager", 200, 200), ("auditor", 403, 403), ("plain_staff", 403, 403)],
)
def test_who_may_renew_and_transfer(request, subscription, who, renew, transfer):
    client = request.getfixturevalue(who)
    assert client.get(renew_url(subscription)).status_code == renew
    assert client.get(transfer_url(subscription)).status_code == transfer
    posted = client.post(transfer_url(subscription), transfer_form())
    assert posted.status_code == (302 if transfer == 200 else 403)
    assert License.objects.filter(replaces=subscription).exists() == (transfer == 200)


# --- the chain -------------------------------------------------------------------------------


def test_the_license_page_shows_the_chain_as_links(boss, subscription):
    renewal = successors.license_renew(actor=ACTOR, license_id=subscription.pk, duration_days=30)
    moved = successors.license_transfer(
        actor=ACTOR, license_id=renewal.pk, instance_fingerprint=NEW_FP, reason="r"
    )

    def link(license) -> str:
        return f'<a class="aegis-mono" href="{change_url(license)}">{license.pk}</a>'

    first = boss.get(change_url(subscription)).content.decode()
    assert link(renewal) in first and f"newest: {link(moved)}" in first
    assert "the first of its chain" in first
    middle = boss.get(change_url(renewal)).content.decode()
    assert link(subscription) in middle and link(moved) in middle
    assert "newest:" not in middle
    last = boss.get(change_url(moved)).content.decode()
    assert link(renewal) in last and "the newest of its chain" in last


def test_a_license_without_a_chain_shows_no_chain(boss, subscription):
    page = boss.get(change_url(subscription)).content.decode()
    assert "Replaced by" not in page and "the first of its chain" not in page


# --- seats on the issue form -------------------------------------------------------------------


def test_the_issue_form_takes_seats(boss, customer, settings):
    settings.DEFAULT_MAX_STAGING_INSTANCES = 3
    assert 'name="max_staging_instances" value="3"' in boss.get(ADD).content.decode()
    response = boss.post(ADD, issue_form(max_instances="5", max_staging_instances="0"))
    assert response.status_code == 302, form_errors(response)
    license = License.objects.get()
    assert (license.max_instances, license.max_staging_instances) == (5, 0)
    page = boss.get(change_url(license)).content.decode()
    assert "5 production · 0 staging" in page


def test_the_issue_form_defaults_to_no_limit(boss, customer):
    response = boss.post(ADD, issue_form())
    assert response.status_code == 302, form_errors(response)
    license = License.objects.get()
    assert (license.max_instances, license.max_staging_instances) == (None, 2)
    assert "no limit · 2 staging" in boss.get(change_url(license)).content.decode()


@pytest.mark.parametrize(
    ("seats", "field"),
    [
        ({"max_instances": "0"}, "max_instances"),
        ({"max_staging_instances": "-1"}, "max_staging_instances"),
    ],
)
def test_bad_seats_on_the_issue_form(boss, customer, seats, field):
    before = last_audit_id()
    response = boss.post(ADD, issue_form(**seats))
    assert response.status_code == 200
    assert field in form_errors(response)
    assert not License.objects.exists() and new_rows(before) == []


def form_errors_of(response) -> dict[str, list[str]]:
    form = response.context["form"]
    return {field: list(errors) for field, errors in form.errors.items()}
