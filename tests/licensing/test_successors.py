"""licensing.successors: renew, transfer and re-issue issue a successor through the one issue
path, link the chain, revoke where they must, write their audit rows in the same transaction,
and of concurrent changes to one license exactly one wins (CONTRACT §9)."""

from __future__ import annotations

import datetime as dt
import threading
import uuid

import pytest
from django.db import close_old_connections, connection
from django.utils import timezone

from audit import chain
from audit.models import AuditLog
from customers.services import CustomerInactive, customer_update
from licensing import keys, signing, successors
from licensing.models import License, LicenseStatus
from licensing.services import (
    LicenseAlreadyRevoked,
    LicenseNotFound,
    SigningUnavailable,
    license_revoke,
)
from licensing.verification import compute_fingerprint
from tests.conftest import ACTOR, TEST_KID, audit_inserts_refused

pytestmark = pytest.mark.django_db
NEW_FP = compute_fingerprint("7d2c1f00-1111-4a4b-9a4b-0242ac120099", "odoo.acme.example")
NEW_KID = "aegis-test-02"


def events(license_id) -> list[str]:
    return list(
        AuditLog.objects.filter(license_id=license_id)
        .order_by("id")
        .values_list("event_type", flat=True)
    )


def token_claims(license: License) -> dict:
    return signing.verifier().verify_token(license.token).claims


def rotate(settings, keys_dir, kid: str = NEW_KID) -> None:
    signing.write_keypair(keys_dir, kid)
    settings.KEY_ID = kid
    settings.PRIVATE_KEY_PATH = keys_dir / f"{kid}.private.pem"
    signing.reset()


@pytest.fixture
def subscription(make_license):
    return make_license(
        license_type="subscription",
        duration_days=30,
        instance_fingerprint="sha256:" + "a" * 64,
        max_instances=2,
        max_staging_instances=1,
        notes="yearly",
    )


# --- Renew --------------------------------------------------------------------------------


def test_renew_copies_the_terms_and_links_the_chain(subscription):
    new = successors.license_renew(actor=ACTOR, license_id=subscription.id, duration_days=365)
    subscription.refresh_from_db()
    assert subscription.replaced_by_id == new.id and new.replaces_id == subscription.id
    assert subscription.status == LicenseStatus.ACTIVE  # no gap
    assert new.expires_at == subscription.expires_at + dt.timedelta(days=365)
    same = (
        "customer_id",
        "module_name",
        "allowed_major_versions",
        "license_type",
        "instance_fingerprint",
        "max_instances",
        "max_staging_instances",
        "notes",
    )
    assert {f: getattr(new, f) for f in same} == {f: getattr(subscription, f) for f in same}
    claims = token_claims(new)
    old_claims = token_claims(subscription)
    assert claims["replaces"] == str(subscription.id) and claims["jti"] == str(new.id)
    assert {k: v for k, v in claims.items() if k not in {"jti", "iat", "exp", "replaces"}} == {
        k: v for k, v in old_claims.items() if k not in {"jti", "iat", "exp"}
    }
    assert events(subscription.id) == ["license.issued", "license.renewed"]
    assert events(new.id) == ["license.issued"]
    assert chain.verify().ok


def test_renewing_a_demo_without_a_term_adds_the_default_demo_duration(make_license, settings):
    settings.DEFAULT_DEMO_DURATION_DAYS = 14
    demo = make_license(license_type="demo", duration_days=10)
    new = successors.license_renew(actor=ACTOR, license_id=demo.id)
    assert new.expires_at == demo.expires_at + dt.timedelta(days=14)


def test_a_renewal_cannot_pass_the_longest_term(make_license, settings):
    demo = make_license(license_type="demo", duration_days=80)
    with pytest.raises(successors.ValidationFailed) as caught:
        successors.license_renew(actor=ACTOR, license_id=demo.id, duration_days=20)
    assert caught.value.errors == {"duration_days": ["A demo license lasts at most 90 days."]}
    assert License.objects.count() == 1


def test_an_expiry_before_now_is_refused_even_for_an_expired_license(make_license):
    old = make_license(license_type="subscription", duration_days=30)
    past = timezone.now().replace(microsecond=0) - dt.timedelta(days=5)
    License.objects.filter(pk=old.pk).update(expires_at=past - dt.timedelta(days=5))
    with pytest.raises(successors.ValidationFailed) as caught:
        successors.license_renew(actor=ACTOR, license_id=old.id, expires_at=past)
    assert caught.value.errors == {"expires_at": ["Must be in the future."]}


@pytest.mark.parametrize(
    ("setup", "error"),
    [
        ("perpetual", successors.LicenseNotRenewable),
        ("revoked", successors.LicenseNotRenewable),
        ("replaced", successors.LicenseAlreadyReplaced),
        ("inactive", CustomerInactive),
    ],
)
def test_refused_renewals_write_nothing(make_license, customer, setup, error):
    old = make_license(license_type="perpetual" if setup == "perpetual" else "demo")
    if setup == "revoked":
        license_revoke(actor=ACTOR, license_id=old.id, reason="r")
    elif setup == "replaced":
        successors.license_renew(actor=ACTOR, license_id=old.id)
    elif setup == "inactive":
        customer_update(actor=ACTOR, customer_id=customer.id, is_active=False)
    licenses, rows = License.objects.count(), AuditLog.objects.count()
    with pytest.raises(error):
        successors.license_renew(actor=ACTOR, license_id=old.id, duration_days=10)
    assert (License.objects.count(), AuditLog.objects.count()) == (licenses, rows)


def test_an_unknown_license_is_not_found(db):
    for service, kwargs in [
        (successors.license_renew, {"duration_days": 1}),
        (successors.license_transfer, {"instance_fingerprint": NEW_FP, "reason": "r"}),
        (successors.license_reissue, {"reason": "r"}),
    ]:
        for license_id in (uuid.uuid4(), "nope"):
            with pytest.raises(LicenseNotFound):
                service(actor=ACTOR, license_id=license_id, **kwargs)


# --- Transfer and re-issue ------------------------------------------------------------------


def test_transfer_revokes_through_the_revoke_path(subscription):
    new = successors.license_transfer(
        actor=ACTOR,
        license_id=subscription.id,
        reason="  Moved to new hardware ",
        instance_db_uuid="7d2c1f00-1111-4a4b-9a4b-0242ac120099",
        instance_domain="https://odoo.acme.example/web",
    )
    subscription.refresh_from_db()
    assert subscription.status == LicenseStatus.REVOKED
    assert subscription.revoked_reason == "Moved to new hardware"
    assert subscription.revoked_at is not None
    assert new.instance_fingerprint == NEW_FP == token_claims(new)["instance_fingerprint"]
    assert new.expires_at == subscription.expires_at
    assert events(subscription.id) == [
        "license.issued",
        "license.revoked",
        "license.transferred",
    ]
    with pytest.raises(successors.LicenseAlreadyReplaced):
        successors.license_transfer(
            actor=ACTOR, license_id=subscription.id, instance_fingerprint=NEW_FP, reason="again"
        )


def test_reissue_signs_with_the_current_key_and_revokes(subscription, settings, keys_dir):
    rotate(settings, keys_dir)
    new = successors.license_reissue(actor=ACTOR, license_id=subscription.id, reason="leaked")
    assert (subscription.key_id, new.key_id) == (TEST_KID, NEW_KID)
    assert signing.verifier().verify_token(new.token).header["kid"] == NEW_KID
    subscription.refresh_from_db()
    assert (subscription.status, subscription.revoked_reason) == (LicenseStatus.REVOKED, "leaked")
    row = AuditLog.objects.get(event_type="license.reissued")
    assert row.event_data == {
        "successor": str(new.id),
        "reason": "leaked",
        "from_key_id": TEST_KID,
        "to_key_id": NEW_KID,
    }


@pytest.mark.parametrize("service", ["transfer", "reissue"])
@pytest.mark.parametrize(
    ("state", "error"),
    [("revoked", LicenseAlreadyRevoked), ("expired", successors.LicenseExpired)],
)
def test_a_revoked_or_expired_license_is_neither_moved_nor_reissued(
    subscription, service, state, error
):
    if state == "revoked":
        license_revoke(actor=ACTOR, license_id=subscription.id, reason="r")
    else:
        License.objects.filter(pk=subscription.pk).update(
            expires_at=timezone.now() - dt.timedelta(seconds=1)
        )
    rows = AuditLog.objects.count()
    call = {
        "transfer": lambda: successors.license_transfer(
            actor=ACTOR, license_id=subscription.id, instance_fingerprint=NEW_FP, reason="r"
        ),
        "reissue": lambda: successors.license_reissue(
            actor=ACTOR, license_id=subscription.id, reason="r"
        ),
    }[service]
    with pytest.raises(error):
        call()
    assert (License.objects.count(), AuditLog.objects.count()) == (1, rows)


def test_reissue_is_allowed_for_an_inactive_customer(subscription, customer):
    customer_update(actor=ACTOR, customer_id=customer.id, is_active=False)
    with pytest.raises(CustomerInactive):
        successors.license_transfer(
            actor=ACTOR, license_id=subscription.id, instance_fingerprint=NEW_FP, reason="r"
        )
    new = successors.license_reissue(actor=ACTOR, license_id=subscription.id, reason="key")
    assert new.replaces_id == subscription.id


@pytest.mark.parametrize(
    "service",
    [
        lambda lic: successors.license_renew(actor=ACTOR, license_id=lic.id, duration_days=30),
        lambda lic: successors.license_transfer(
            actor=ACTOR, license_id=lic.id, instance_fingerprint=NEW_FP, reason="r"
        ),
        lambda lic: successors.license_reissue(actor=ACTOR, license_id=lic.id, reason="r"),
    ],
    ids=["renew", "transfer", "reissue"],
)
@pytest.mark.django_db(transaction=True)
def test_a_failed_audit_rolls_the_successor_back(make_license, service):
    old = make_license(license_type="subscription", duration_days=30)
    rows = AuditLog.objects.count()
    with (
        audit_inserts_refused(f"fail_audit_{uuid.uuid4().hex[:8]}"),
        pytest.raises(Exception, match="audit unavailable"),
    ):
        service(old)
    old.refresh_from_db()
    assert (old.status, old.replaced_by_id) == (LicenseStatus.ACTIVE, None)
    assert (License.objects.count(), AuditLog.objects.count()) == (1, rows)


def test_no_successor_without_a_signing_key(subscription, keys_dir):
    (keys_dir / f"{TEST_KID}.private.pem").unlink()
    signing.reset()
    with pytest.raises(SigningUnavailable):
        successors.license_renew(actor=ACTOR, license_id=subscription.id, duration_days=1)
    subscription.refresh_from_db()
    assert subscription.replaced_by_id is None and License.objects.count() == 1


# --- Re-issue of every license of a key ----------------------------------------------------


def test_licenses_reissue_takes_the_active_licenses_of_the_key(make_license, settings, keys_dir):
    active = [make_license() for _ in range(3)]
    revoked = make_license()
    license_revoke(actor=ACTOR, license_id=revoked.id, reason="r")
    expired = make_license(license_type="subscription", duration_days=5)
    License.objects.filter(pk=expired.pk).update(expires_at=timezone.now() - dt.timedelta(days=1))
    renewed = make_license(license_type="subscription", duration_days=5)
    renewal = successors.license_renew(actor=ACTOR, license_id=renewed.id, duration_days=5)
    rotate(settings, keys_dir)
    later = make_license()  # signed by the new key already

    calls: list[tuple[int, int]] = []
    report = successors.licenses_reissue(
        actor=ACTOR, key_id=TEST_KID, progress=lambda done, total: calls.append((done, total))
    )
    # The renewal (its predecessor has a successor already) is re-issued, not its predecessor.
    assert (report.total, report.reissued, report.skipped) == (4, 4, {})
    assert calls == [(1, 4), (2, 4), (3, 4), (4, 4)]
    reissued = set(
        License.objects.filter(key_id=NEW_KID, replaces__isnull=False).values_list(
            "replaces_id", flat=True
        )
    )
    assert reissued == {lic.id for lic in active} | {renewal.id}
    for untouched in (revoked, expired, renewed, later):
        untouched.refresh_from_db()
        assert untouched.replaced_by_id in (None, renewal.id)
    assert successors.licenses_reissue(actor=ACTOR, key_id=TEST_KID).total == 0


def test_licenses_reissue_walks_past_a_batch(make_license, settings, keys_dir, monkeypatch):
    monkeypatch.setattr(successors, "REISSUE_BATCH", 2)
    made = {make_license().id for _ in range(5)}
    rotate(settings, keys_dir)
    report = successors.licenses_reissue(actor=ACTOR, key_id=TEST_KID, reason="rotation")
    assert report.reissued == 5
    assert set(License.objects.filter(key_id=NEW_KID).values_list("replaces_id", flat=True)) == made
    assert set(License.objects.filter(id__in=made).values_list("revoked_reason", flat=True)) == {
        "rotation"
    }


@pytest.mark.parametrize(
    ("key_id", "message"),
    [(TEST_KID, "is the current signing key"), ("../etc", "Use letters, digits")],
)
def test_licenses_reissue_refuses_the_signing_key_and_bad_ids(make_license, key_id, message):
    make_license()
    with pytest.raises(successors.ValidationFailed, match=message):
        successors.licenses_reissue(actor=ACTOR, key_id=key_id)
    assert License.objects.filter(replaced_by__isnull=False).count() == 0


def test_licenses_reissue_needs_a_key_that_signs(make_license, settings, keys_dir):
    make_license()
    rotate(settings, keys_dir)
    keys.signing_key_retire(actor=ACTOR, key_id=NEW_KID)
    with pytest.raises(SigningUnavailable, match="retired"):
        successors.licenses_reissue(actor=ACTOR, key_id=TEST_KID)
    assert License.objects.count() == 1


# --- Races --------------------------------------------------------------------------------


def race(worker, n: int) -> list[str]:
    barrier = threading.Barrier(n)
    outcomes: list[str] = []
    lock = threading.Lock()

    def run(i: int) -> None:
        try:
            barrier.wait()
            worker(i)
            outcome = "ok"
        except successors.LicenseAlreadyReplaced:
            outcome = "already_replaced"
        except Exception as exc:  # any other answer fails the test below
            outcome = repr(exc)
        finally:
            connection.close()
        with lock:
            outcomes.append(outcome)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "a racer hung"
    close_old_connections()
    return outcomes


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_concurrent_renewals_make_exactly_one_successor(make_license):
    old = make_license(license_type="subscription", duration_days=30)
    outcomes = race(
        lambda i: successors.license_renew(actor=ACTOR, license_id=old.id, duration_days=30 + i),
        2,
    )
    assert sorted(outcomes) == ["already_replaced", "ok"]
    [new] = License.objects.filter(replaces=old)
    old.refresh_from_db()
    assert old.replaced_by_id == new.id
    assert AuditLog.objects.filter(event_type="license.renewed", license_id=old.id).count() == 1
    assert AuditLog.objects.filter(event_type="license.issued").count() == 2
    assert chain.verify().ok


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_racing_renewals_transfers_and_reissues_make_one_successor(make_license):
    old = make_license(license_type="subscription", duration_days=30)

    def change(i: int) -> None:
        if i % 3 == 0:
            successors.license_renew(actor=ACTOR, license_id=old.id, duration_days=10)
        elif i % 3 == 1:
            successors.license_transfer(
                actor=ACTOR, license_id=old.id, instance_fingerprint=NEW_FP, reason=f"r{i}"
            )
        else:
            successors.license_reissue(actor=ACTOR, license_id=old.id, reason=f"r{i}")

    outcomes = race(change, 12)
    assert sorted(outcomes) == ["already_replaced"] * 11 + ["ok"]
    assert License.objects.filter(replaces=old).count() == 1
    assert AuditLog.objects.filter(event_type="license.revoked").count() <= 1
    assert chain.verify().ok
