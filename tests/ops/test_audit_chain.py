"""The audit hash chain: every state change is linked, validations are not, and
`verify_audit_chain` names the first row altered, removed or renumbered behind the
application's back."""

from __future__ import annotations

import itertools
import threading

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.utils import timezone

from aegis.core import actors
from aegis.services import api_key_create
from audit import chain
from audit.models import AuditLog
from audit.services import audit_record
from customers.services import customer_update
from licensing import services
from tests.conftest import ACTOR

pytestmark = pytest.mark.django_db


def tamper(sql: str, params=()) -> None:
    """Change the audit table the way someone with database access would: on PostgreSQL by
    switching the append-only trigger off around the statement."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("ALTER TABLE audit_auditlog DISABLE TRIGGER audit_auditlog_append_only")
        cursor.execute(sql, params)
        if connection.vendor == "postgresql":
            cursor.execute("ALTER TABLE audit_auditlog ENABLE TRIGGER audit_auditlog_append_only")


def verify_command(*args) -> str:
    from io import StringIO

    out = StringIO()
    call_command("verify_audit_chain", *args, stdout=out)
    return out.getvalue()


@pytest.fixture
def history(make_license, customer):
    """A few state changes through the services, and validations between them."""
    first = make_license()
    audit_record(event_type="license.validated", actor="public", event_data={"code": "VALID"})
    customer_update(actor=ACTOR, customer_id=customer.id, phone="+243 81 000 0000")
    services.license_revoke(actor=ACTOR, license_id=first.id, reason="chargeback")
    api_key_create(actor=actors.for_cli(), name="erp", scope="issuer")
    audit_record(event_type="license.validated", actor="public", event_data={"code": "REVOKED"})
    return list(AuditLog.objects.filter(chain_seq__isnull=False).order_by("chain_seq"))


def test_state_changes_are_linked_in_order_and_validations_are_not(history):
    assert [row.chain_seq for row in history] == list(range(1, len(history) + 1))
    assert history[0].prev_hash == chain.GENESIS
    for prev, row in itertools.pairwise(history):
        assert row.prev_hash == prev.hash
    for row in history:
        assert row.hash == chain.row_hash(row) and len(row.hash) == 64
    validations = AuditLog.objects.filter(event_type="license.validated")
    assert validations.count() == 2
    assert set(validations.values_list("chain_seq", "prev_hash", "hash")) == {(None, None, None)}
    assert {row.event_type for row in history} >= {
        "customer.created",
        "license.issued",
        "customer.updated",
        "license.revoked",
        "api_key.created",
    }


def test_the_hash_covers_every_field(history):
    row = history[1]
    fields = {
        "prev_hash": row.prev_hash,
        "chain_seq": row.chain_seq,
        "event_type": row.event_type,
        "license_id": row.license_id,
        "customer_id": row.customer_id,
        "module_name": row.module_name,
        "actor": row.actor,
        "ip": row.ip,
        "request_id": row.request_id,
        "event_data": row.event_data,
        "created_at": row.created_at,
    }
    assert chain.compute_hash(**fields) == row.hash
    changes = {
        "prev_hash": "f" * 64,
        "chain_seq": row.chain_seq + 1,
        "event_type": "license.forged",
        "license_id": "00000000-0000-0000-0000-000000000001",
        "customer_id": "CUST-999",
        "module_name": "other_module",
        "actor": "user:mallory",
        "ip": "203.0.113.9",
        "request_id": "forged",
        "event_data": {**row.event_data, "extra": 1},
        "created_at": row.created_at.replace(microsecond=(row.created_at.microsecond + 1) % 10**6),
    }
    for name, value in changes.items():
        assert chain.compute_hash(**(fields | {name: value})) != row.hash, name


def test_verify_passes_on_an_intact_chain(history):
    out = verify_command()
    assert out.startswith(f"OK: {len(history)} chained audit rows verified")
    assert f"head seq={len(history)} hash={history[-1].hash}" in out


def test_an_empty_chain_verifies(db):
    assert verify_command().startswith("OK: 0 chained audit rows verified")


def test_altered_row_is_named(history):
    victim = history[2]
    tamper("UPDATE audit_auditlog SET actor = %s WHERE id = %s", ["user:mallory", victim.id])
    with pytest.raises(CommandError, match=rf"BROKEN at row id={victim.id}: content"):
        verify_command()


def test_altered_event_data_is_named(history):
    victim = history[1]
    tamper(
        "UPDATE audit_auditlog SET event_data = %s WHERE id = %s",
        ['{"license_type": "perpetual"}', victim.id],
    )
    with pytest.raises(CommandError, match=rf"BROKEN at row id={victim.id}"):
        verify_command()


def test_rehashed_row_breaks_the_next_link(history):
    """Recomputing the altered row's own hash is not enough: the next row still points at
    the old one."""
    victim = history[1]
    victim.actor = "user:mallory"
    tamper(
        "UPDATE audit_auditlog SET actor = %s, hash = %s WHERE id = %s",
        ["user:mallory", chain.row_hash(victim), victim.id],
    )
    with pytest.raises(CommandError, match=rf"BROKEN at row id={history[2].id}: prev_hash"):
        verify_command()


def test_deleted_row_is_named_by_its_successor(history):
    tamper("DELETE FROM audit_auditlog WHERE id = %s", [history[2].id])
    with pytest.raises(CommandError, match=rf"BROKEN at row id={history[3].id}: chain_seq 4"):
        verify_command()


def test_unchaining_a_row_is_detected(history):
    tamper(
        "UPDATE audit_auditlog SET chain_seq = NULL, prev_hash = NULL, hash = NULL, "
        "event_type = 'license.validated' WHERE id = %s",
        [history[0].id],
    )
    with pytest.raises(CommandError, match=rf"BROKEN at row id={history[1].id}"):
        verify_command()


def test_state_change_row_inserted_outside_the_chain_is_named(history):
    forged = AuditLog.objects.create(event_type="license.revoked", actor="user:mallory")
    with pytest.raises(CommandError, match=rf"BROKEN at row id={forged.id}: a state-change row"):
        verify_command()


def test_recorded_head_catches_truncation_and_rewrite(history):
    head = f"{history[-1].chain_seq}:{history[-1].hash}"
    assert verify_command("--expect-head", head).startswith("OK")
    tamper("DELETE FROM audit_auditlog WHERE id = %s", [history[-1].id])
    with pytest.raises(CommandError, match="TRUNCATED"):
        verify_command("--expect-head", head)
    with pytest.raises(CommandError, match="SEQ:HASH"):
        verify_command("--expect-head", "nonsense")


@pytest.mark.django_db(transaction=True)
def test_existing_rows_are_chained_by_the_migration():
    """Rows written before the chain existed are chained, oldest first, on upgrade."""
    call_command("migrate", "audit", "0002", verbosity=0)
    with connection.cursor() as cursor:
        for event_type in ("customer.created", "license.validated", "license.issued"):
            cursor.execute(
                "INSERT INTO audit_auditlog (event_type, actor, customer_id, request_id, "
                "event_data, created_at) VALUES (%s, %s, %s, '', %s, %s)",
                [event_type, ACTOR, "C1", '{"n": 1}', timezone.now()],
            )
    call_command("migrate", "audit", verbosity=0)
    chained = list(AuditLog.objects.filter(chain_seq__isnull=False).order_by("chain_seq"))
    assert [r.event_type for r in chained] == ["customer.created", "license.issued"]
    assert chain.verify().ok
    audit_record(event_type="customer.updated", actor=ACTOR, customer_id="C1")
    assert chain.verify().count == 3


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_state_changes_keep_one_unbroken_chain():
    """Inserts from many connections at once neither fork the chain nor leave a gap."""
    writers, per_writer = 8, 5
    barrier = threading.Barrier(writers)
    errors = []

    def write(n):
        try:
            barrier.wait()
            for i in range(per_writer):
                audit_record(event_type="test.recorded", actor=f"user:w{n}", event_data={"i": i})
        except Exception as exc:  # reported below; a thread must not die silently
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=write, args=(n,)) for n in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    verdict = chain.verify()
    assert verdict.ok and verdict.count == writers * per_writer
