"""/api/v1/licenses/{id}/renew and /transfer, the seats fields of issue, and the re-issue of
every license of a compromised key (CONTRACT §9): the whole answer, the audit rows, and what
the validate endpoint says of the old and the new license afterwards."""

from __future__ import annotations

import datetime as dt
import io
import uuid

import pytest
from django.core.management import call_command
from django.utils import timezone

from aegis.core.api.serializers import instant
from audit.models import AuditLog
from customers.services import customer_update
from licensing import signing
from licensing.models import License, LicenseStatus
from licensing.services import license_revoke
from licensing.verification import compute_fingerprint
from tests.api.conftest import ACTOR, assert_error, client_with
from tests.conftest import TEST_KID

pytestmark = pytest.mark.django_db
URL = "/api/v1/licenses"
MODULE = "biz4a_payroll_drc"
OLD_DB, OLD_DOMAIN = "0b1e6c2a-6f5d-11ee-9a4b-0242ac120002", "erp.acme.example"
NEW_DB, NEW_DOMAIN = "7d2c1f00-1111-4a4b-9a4b-0242ac120099", "odoo.acme.example:8069"
OLD_FP = compute_fingerprint(OLD_DB, OLD_DOMAIN)
NEW_FP = compute_fingerprint(NEW_DB, NEW_DOMAIN)
NEW_KID = "aegis-test-02"


def last_audit_id() -> int:
    return AuditLog.objects.order_by("-id").values_list("id", flat=True).first() or 0


def rows_since(before: int) -> list[tuple]:
    return [
        (row.event_type, row.license_id, row.actor, row.event_data)
        for row in AuditLog.objects.filter(id__gt=before).order_by("id")
    ]


def validate(client, token, **instance) -> str:
    body = {"token": token, "module_name": MODULE, "odoo_version": "17.0"} | instance
    response = client.post(f"{URL}/validate", body, format="json")
    assert response.status_code == 200, response.content
    return response.json()["code"]


def claims(token: str) -> dict:
    result = signing.verifier().verify_token(token)
    assert result.code.value == "VALID", result.code
    return result.claims


def representation(license: License, **fields) -> dict:
    """The license as the API shows it, from its row: every field named, so a missing or an
    extra field fails the comparison."""
    license.refresh_from_db()
    return {
        "id": str(license.id),
        "customer_id": "CUST-001",
        "customer_name": "Acme Corporation",
        "module_name": MODULE,
        "allowed_major_versions": ["17", "18"],
        "license_type": license.license_type,
        "status": "active",
        "instance_fingerprint": license.instance_fingerprint,
        "max_instances": license.max_instances,
        "max_staging_instances": license.max_staging_instances,
        "issued_at": instant(license.issued_at),
        "expires_at": instant(license.expires_at),
        "revoked_at": None,
        "revoked_reason": "",
        "replaces": None,
        "replaced_by": None,
        "notes": license.notes,
        "key_id": TEST_KID,
        "token": license.token,
        "created_at": instant(license.created_at),
        "updated_at": instant(license.updated_at),
    } | fields


def issued_data(license: License, replaces: License) -> dict:
    return {
        "license_type": license.license_type,
        "allowed_major_versions": ["17", "18"],
        "expires_at": license.expires_at.isoformat() if license.expires_at else None,
        "instance_fingerprint": license.instance_fingerprint,
        "key_id": license.key_id,
        "max_instances": license.max_instances,
        "max_staging_instances": license.max_staging_instances,
        "replaces": str(replaces.id),
    }


def nothing_written(before: int, licenses: int) -> None:
    assert rows_since(before) == []
    assert License.objects.count() == licenses
    assert not License.objects.filter(replaced_by__isnull=False).exists()


# --- Renew ------------------------------------------------------------------------------


def test_renew_issues_a_successor_and_the_old_license_stays_valid(issuer, make_license):
    old = make_license(
        license_type="subscription",
        duration_days=30,
        instance_fingerprint=OLD_FP,
        max_staging_instances=1,
        notes="renews yearly",
    )
    before = last_audit_id()
    response = issuer.post(f"{URL}/{old.id}/renew", {"duration_days": 365}, format="json")

    assert response.status_code == 201, response.content
    new = License.objects.get(replaces=old)
    assert response["Location"] == f"{URL}/{new.id}"
    assert response.json() == representation(new, replaces=str(old.id))
    assert new.expires_at == old.expires_at + dt.timedelta(days=365)
    assert (new.instance_fingerprint, new.max_staging_instances, new.notes) == (
        OLD_FP,
        1,
        "renews yearly",
    )
    token = claims(new.token)
    assert token["jti"] == str(new.id) != str(old.id)
    assert token["replaces"] == str(old.id)
    assert token["exp"] == int(new.expires_at.timestamp())
    assert token["instance_fingerprint"] == OLD_FP
    assert token["customer"] == {"id": "CUST-001", "name": "Acme Corporation"}
    assert token["module"] == {"technical_name": MODULE, "allowed_major_versions": ["17", "18"]}

    actor = "api_key:issuer-key"
    assert rows_since(before) == [
        ("license.issued", new.id, actor, issued_data(new, old)),
        (
            "license.renewed",
            old.id,
            actor,
            {
                "successor": str(new.id),
                "previous_expires_at": old.expires_at.isoformat(),
                "expires_at": new.expires_at.isoformat(),
            },
        ),
    ]
    # No gap: both answer VALID, and the old one says who replaced it.
    instance = {"instance_db_uuid": OLD_DB, "instance_domain": OLD_DOMAIN}
    assert validate(issuer, old.token, **instance) == "VALID"
    assert validate(issuer, new.token, **instance) == "VALID"
    old_body = issuer.get(f"{URL}/{old.id}").json()
    assert old_body == representation(old, replaced_by=str(new.id))


def test_renewing_an_expired_license_counts_from_now(issuer, make_license):
    old = make_license(license_type="subscription", duration_days=30)
    License.objects.filter(pk=old.pk).update(
        expires_at=timezone.now().replace(microsecond=0) - dt.timedelta(days=10)
    )
    assert validate(issuer, old.token) == "VALID"  # the token still says 30 days…
    response = issuer.post(f"{URL}/{old.id}/renew", {"duration_days": 30}, format="json")
    assert response.status_code == 201, response.content
    expires = dt.datetime.fromisoformat(response.json()["expires_at"])
    assert dt.timedelta(days=29, hours=23) < expires - timezone.now() <= dt.timedelta(days=30)


def test_renew_to_a_date(issuer, make_license):
    old = make_license(license_type="subscription", duration_days=30)
    target = (old.expires_at + dt.timedelta(days=100)).replace(microsecond=0)
    response = issuer.post(
        f"{URL}/{old.id}/renew", {"expires_at": target.isoformat()}, format="json"
    )
    assert response.status_code == 201, response.content
    assert response.json()["expires_at"] == instant(target)
    assert claims(response.json()["token"])["exp"] == int(target.timestamp())


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"expires_at": "SHORTER"}, "expires_at"),  # before the current expiry
        ({"expires_at": "SAME"}, "expires_at"),
        ({"duration_days": 0}, "duration_days"),
        ({"duration_days": "30"}, "duration_days"),
        ({"duration_days": 30, "expires_at": "LATER"}, "expires_at"),
        ({"duration_days": 3700}, "duration_days"),  # past the longest subscription
        ({}, "duration_days"),  # a subscription needs a term
        ({"days": 30}, "days"),
    ],
)
def test_a_bad_renewal_is_400_and_writes_nothing(issuer, make_license, body, field):
    old = make_license(license_type="subscription", duration_days=60)
    instants = {
        "SHORTER": old.expires_at - dt.timedelta(days=1),
        "SAME": old.expires_at,
        "LATER": old.expires_at + dt.timedelta(days=1),
    }
    body = {k: instants[v].isoformat() if v in instants else v for k, v in body.items()}
    before = last_audit_id()
    response = issuer.post(f"{URL}/{old.id}/renew", body, format="json")
    assert field in assert_error(response, 400, "validation_error")["errors"]
    nothing_written(before, licenses=1)


def test_shortening_says_why(issuer, make_license):
    old = make_license(license_type="subscription", duration_days=60)
    shorter = (old.expires_at - dt.timedelta(days=1)).isoformat()
    response = issuer.post(f"{URL}/{old.id}/renew", {"expires_at": shorter}, format="json")
    body = assert_error(response, 400, "validation_error")
    assert body["errors"] == {
        "expires_at": [
            f"Must be later than the current expiry ({old.expires_at.isoformat()}): "
            "a renewal cannot shorten the term."
        ]
    }


@pytest.mark.parametrize("state", ["perpetual", "revoked"])
def test_renewing_a_perpetual_or_revoked_license_is_409_and_writes_nothing(
    issuer, make_license, state
):
    if state == "perpetual":
        old = make_license()
    else:
        old = make_license(license_type="subscription", duration_days=30)
        license_revoke(actor=ACTOR, license_id=old.id, reason="unpaid")
    before = last_audit_id()
    response = issuer.post(f"{URL}/{old.id}/renew", {"duration_days": 30}, format="json")
    body = assert_error(response, 409, "not_renewable")
    assert str(old.id) in body["detail"] and state in body["detail"]
    nothing_written(before, licenses=1)


def test_renewing_a_replaced_license_is_409_naming_the_successor(issuer, make_license):
    old = make_license(license_type="subscription", duration_days=30)
    first = issuer.post(f"{URL}/{old.id}/renew", {"duration_days": 30}, format="json").json()
    before = last_audit_id()
    response = issuer.post(f"{URL}/{old.id}/renew", {"duration_days": 30}, format="json")
    body = assert_error(response, 409, "already_replaced")
    assert first["id"] in body["detail"]
    nothing_written_since = rows_since(before)
    assert nothing_written_since == []
    assert License.objects.count() == 2
    # The newest of the chain renews.
    assert (
        issuer.post(f"{URL}/{first['id']}/renew", {"duration_days": 30}, format="json").status_code
        == 201
    )


def test_renewing_for_an_inactive_customer_is_409(issuer, make_license, customer):
    old = make_license(license_type="subscription", duration_days=30)
    customer_update(actor=ACTOR, customer_id=customer.id, is_active=False)
    before = last_audit_id()
    response = issuer.post(f"{URL}/{old.id}/renew", {"duration_days": 30}, format="json")
    assert_error(response, 409, "customer_inactive")
    nothing_written(before, licenses=1)


# --- Transfer ---------------------------------------------------------------------------


def test_transfer_revokes_the_old_license_and_binds_the_new_one(issuer, make_license):
    old = make_license(license_type="subscription", duration_days=90, instance_fingerprint=OLD_FP)
    before = last_audit_id()
    response = issuer.post(
        f"{URL}/{old.id}/transfer",
        {"instance_db_uuid": NEW_DB, "instance_domain": NEW_DOMAIN, "reason": "New server"},
        format="json",
    )

    assert response.status_code == 201, response.content
    new = License.objects.get(replaces=old)
    assert response["Location"] == f"{URL}/{new.id}"
    assert response.json() == representation(new, replaces=str(old.id), instance_fingerprint=NEW_FP)
    assert new.expires_at == old.expires_at  # the same term
    assert claims(new.token)["instance_fingerprint"] == NEW_FP
    assert claims(new.token)["replaces"] == str(old.id)

    old.refresh_from_db()
    assert (old.status, old.revoked_reason, old.replaced_by_id) == (
        LicenseStatus.REVOKED,
        "New server",
        new.id,
    )
    actor = "api_key:issuer-key"
    assert rows_since(before) == [
        ("license.revoked", old.id, actor, {"reason": "New server"}),
        ("license.issued", new.id, actor, issued_data(new, old)),
        (
            "license.transferred",
            old.id,
            actor,
            {
                "successor": str(new.id),
                "reason": "New server",
                "from_fingerprint": OLD_FP,
                "to_fingerprint": NEW_FP,
            },
        ),
    ]
    old_instance = {"instance_db_uuid": OLD_DB, "instance_domain": OLD_DOMAIN}
    new_instance = {"instance_db_uuid": NEW_DB, "instance_domain": NEW_DOMAIN}
    assert validate(issuer, old.token, **old_instance) == "REVOKED"
    assert validate(issuer, new.token, **new_instance) == "VALID"
    assert validate(issuer, new.token, **old_instance) == "FINGERPRINT_MISMATCH"


def test_transfer_by_fingerprint(issuer, make_license):
    old = make_license(instance_fingerprint=OLD_FP)
    response = issuer.post(
        f"{URL}/{old.id}/transfer",
        {"instance_fingerprint": NEW_FP, "reason": "Moved"},
        format="json",
    )
    assert response.status_code == 201, response.content
    assert response.json()["instance_fingerprint"] == NEW_FP
    assert response.json()["expires_at"] is None
    assert "exp" not in claims(response.json()["token"])  # still perpetual


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"reason": "r"}, "instance_fingerprint"),  # no instance at all
        ({"instance_db_uuid": NEW_DB, "reason": "r"}, "instance_domain"),
        ({"instance_domain": NEW_DOMAIN, "reason": "r"}, "instance_db_uuid"),
        (
            {
                "instance_fingerprint": NEW_FP,
                "instance_db_uuid": NEW_DB,
                "instance_domain": NEW_DOMAIN,
                "reason": "r",
            },
            "instance_fingerprint",
        ),
        ({"instance_fingerprint": "sha256:xyz", "reason": "r"}, "instance_fingerprint"),
        ({"instance_fingerprint": OLD_FP, "reason": "r"}, "instance_fingerprint"),  # same one
        ({"instance_fingerprint": NEW_FP}, "reason"),
        ({"instance_fingerprint": NEW_FP, "reason": "  "}, "reason"),
        ({"instance_fingerprint": 5, "reason": "r"}, "instance_fingerprint"),
    ],
)
def test_a_bad_transfer_is_400_and_writes_nothing(issuer, make_license, body, field):
    old = make_license(instance_fingerprint=OLD_FP)
    before = last_audit_id()
    response = issuer.post(f"{URL}/{old.id}/transfer", body, format="json")
    assert field in assert_error(response, 400, "validation_error")["errors"]
    nothing_written(before, licenses=1)
    old.refresh_from_db()
    assert old.status == LicenseStatus.ACTIVE


@pytest.mark.parametrize(
    ("state", "code"), [("revoked", "already_revoked"), ("expired", "license_expired")]
)
def test_transferring_a_revoked_or_expired_license_is_409(issuer, make_license, state, code):
    old = make_license(license_type="subscription", duration_days=30)
    if state == "revoked":
        license_revoke(actor=ACTOR, license_id=old.id, reason="unpaid")
    else:
        License.objects.filter(pk=old.pk).update(expires_at=timezone.now() - dt.timedelta(days=1))
    before = last_audit_id()
    response = issuer.post(
        f"{URL}/{old.id}/transfer", {"instance_fingerprint": NEW_FP, "reason": "r"}, format="json"
    )
    assert_error(response, 409, code)
    nothing_written(before, licenses=1)


# --- Routes, scopes, ids ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("action", "body"),
    [
        ("renew", {"duration_days": 30}),
        ("transfer", {"instance_fingerprint": NEW_FP, "reason": "r"}),
    ],
)
def test_successor_routes_need_an_issuer_key(make_license, make_key, action, body):
    old = make_license(license_type="subscription", duration_days=30)
    url = f"{URL}/{old.id}/{action}"
    assert_error(client_with().post(url, body, format="json"), 401, "not_authenticated")
    assert_error(
        client_with(make_key("readonly")).post(url, body, format="json"), 403, "permission_denied"
    )
    assert client_with(make_key("admin")).get(url).status_code == 405
    assert License.objects.count() == 1
    assert client_with(make_key("issuer")).post(url, body, format="json").status_code == 201


@pytest.mark.parametrize("action", ["renew", "transfer"])
def test_successor_of_an_unknown_or_malformed_id_is_404(issuer, db, action):
    body = (
        {"duration_days": 30}
        if action == "renew"
        else {"instance_fingerprint": NEW_FP, "reason": "r"}
    )
    assert_error(
        issuer.post(f"{URL}/{uuid.uuid4()}/{action}", body, format="json"), 404, "license_not_found"
    )
    assert_error(issuer.post(f"{URL}/not-a-uuid/{action}", body, format="json"), 404, "not_found")


def test_the_list_shows_the_chain_as_retrieve_does(issuer, make_license):
    old = make_license(license_type="subscription", duration_days=30)
    new_id = issuer.post(f"{URL}/{old.id}/renew", {"duration_days": 30}, format="json").json()["id"]
    rows = {row["id"]: row for row in issuer.get(URL).json()["results"]}
    assert rows[str(old.id)]["replaced_by"] == new_id
    assert rows[new_id]["replaces"] == str(old.id)
    for license_id, row in rows.items():
        assert issuer.get(f"{URL}/{license_id}").json() == row


# --- Seats on issue ------------------------------------------------------------------------

ISSUE = {
    "customer_id": "CUST-001",
    "module_name": MODULE,
    "allowed_major_versions": ["17", "18"],
    "license_type": "subscription",
    "duration_days": 365,
}


def test_issue_with_seats(issuer, customer):
    response = issuer.post(
        URL, ISSUE | {"max_instances": 3, "max_staging_instances": 0}, format="json"
    )
    assert response.status_code == 201, response.content
    license = License.objects.get()
    assert response.json() == representation(license)
    assert (license.max_instances, license.max_staging_instances) == (3, 0)
    row = AuditLog.objects.get(event_type="license.issued")
    assert (row.event_data["max_instances"], row.event_data["max_staging_instances"]) == (3, 0)
    # Seats are enforced online: the token does not carry them.
    assert not {"max_instances", "max_staging_instances", "replaces"} & set(claims(license.token))


def test_seats_default_to_no_limit_and_the_staging_setting(issuer, customer, settings):
    settings.DEFAULT_MAX_STAGING_INSTANCES = 5
    body = issuer.post(URL, ISSUE, format="json").json()
    assert (body["max_instances"], body["max_staging_instances"]) == (None, 5)
    body = issuer.post(URL, ISSUE | {"max_instances": None}, format="json").json()
    assert body["max_instances"] is None


@pytest.mark.parametrize(
    ("seats", "field"),
    [
        ({"max_instances": 0}, "max_instances"),
        ({"max_instances": -1}, "max_instances"),
        ({"max_instances": "3"}, "max_instances"),
        ({"max_instances": True}, "max_instances"),
        ({"max_instances": 10**12}, "max_instances"),
        ({"max_staging_instances": -1}, "max_staging_instances"),
        ({"max_staging_instances": None}, "max_staging_instances"),
    ],
)
def test_bad_seats_are_400_and_write_nothing(issuer, customer, seats, field):
    before = last_audit_id()
    response = issuer.post(URL, ISSUE | seats, format="json")
    assert field in assert_error(response, 400, "validation_error")["errors"]
    nothing_written(before, licenses=0)


def test_a_renewal_and_a_transfer_keep_the_seats(issuer, make_license):
    old = make_license(
        license_type="subscription", duration_days=30, max_instances=4, max_staging_instances=0
    )
    renewed = issuer.post(f"{URL}/{old.id}/renew", {"duration_days": 30}, format="json").json()
    moved = issuer.post(
        f"{URL}/{renewed['id']}/transfer",
        {"instance_fingerprint": NEW_FP, "reason": "r"},
        format="json",
    ).json()
    for body in (renewed, moved):
        assert (body["max_instances"], body["max_staging_instances"]) == (4, 0)
    assert moved["replaces"] == renewed["id"]


# --- Re-issue after a compromised key -------------------------------------------------------


def run(*args) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out, stderr=out)
    return out.getvalue()


def test_reissue_after_a_compromised_key_makes_valid_successors(
    issuer, make_license, settings, keys_dir
):
    bound = make_license(license_type="subscription", duration_days=30, instance_fingerprint=OLD_FP)
    perpetual = make_license(notes="flagship")
    revoked = make_license()
    license_revoke(actor=ACTOR, license_id=revoked.id, reason="fraud")
    expired = make_license(license_type="subscription", duration_days=30)
    License.objects.filter(pk=expired.pk).update(expires_at=timezone.now() - dt.timedelta(days=1))

    run("generate_keys", "--key-id", NEW_KID)
    settings.KEY_ID = NEW_KID
    settings.PRIVATE_KEY_PATH = keys_dir / f"{NEW_KID}.private.pem"
    run("retire_key", TEST_KID, "--compromised")
    signing.reset()
    instance = {"instance_db_uuid": OLD_DB, "instance_domain": OLD_DOMAIN}
    assert validate(issuer, bound.token, **instance) == "UNKNOWN_KEY"
    assert validate(issuer, perpetual.token) == "UNKNOWN_KEY"

    before = last_audit_id()
    out = run("reissue_licenses", "--key-id", TEST_KID)
    assert "2/2 licenses" in out
    assert f"2 active licenses signed by {TEST_KID}: 2 re-issued under {NEW_KID}, 0 skipped." in out

    for old in (bound, perpetual):
        old.refresh_from_db()
        new = License.objects.get(pk=old.replaced_by_id)
        assert old.status == LicenseStatus.REVOKED
        assert new.key_id == NEW_KID and new.replaces_id == old.id
        assert (new.expires_at, new.instance_fingerprint, new.notes) == (
            old.expires_at,
            old.instance_fingerprint,
            old.notes,
        )
        assert claims(new.token)["replaces"] == str(old.id)
        assert validate(issuer, new.token, **instance) == "VALID"
        body = issuer.get(f"{URL}/{new.id}").json()
        assert (body["key_id"], body["replaces"], body["status"]) == (
            NEW_KID,
            str(old.id),
            "active",
        )
        reason = f"Re-issued under signing key {NEW_KID}: key {TEST_KID} is retired."
        assert old.revoked_reason == reason
        assert [
            (event, data)
            for event, license_id, _, data in rows_since(before)
            if license_id == old.id
        ] == [
            ("license.revoked", {"reason": reason}),
            (
                "license.reissued",
                {
                    "successor": str(new.id),
                    "reason": reason,
                    "from_key_id": TEST_KID,
                    "to_key_id": NEW_KID,
                },
            ),
        ]
    # The revoked and the expired licenses were left alone.
    assert License.objects.filter(replaces__in=[revoked, expired]).count() == 0
    assert License.objects.count() == 6
    assert "0 re-issued" in run("reissue_licenses", "--key-id", TEST_KID)  # nothing left
