"""The audit table is append-only: the application and, on PostgreSQL, the database refuse
to change or remove a row."""

from __future__ import annotations

import pytest
from django.db import DatabaseError, connection, transaction

from audit.models import AppendOnlyError, AuditLog
from audit.services import audit_record
from tests.conftest import ACTOR

pytestmark = pytest.mark.django_db


@pytest.fixture
def row():
    return audit_record(event_type="test.recorded", actor=ACTOR, event_data={"a": 1})


def test_model_and_queryset_refuse_update_and_delete(row):
    row.event_type = "changed"
    with pytest.raises(AppendOnlyError):
        row.save()
    with pytest.raises(AppendOnlyError):
        row.delete()
    with pytest.raises(AppendOnlyError):
        AuditLog.objects.filter(pk=row.pk).update(actor="someone else")
    with pytest.raises(AppendOnlyError):
        AuditLog.objects.all().delete()
    assert AuditLog.objects.get(pk=row.pk).event_type == "test.recorded"


def test_secrets_are_masked(db):
    entry = audit_record(
        event_type="test.recorded",
        actor=ACTOR,
        event_data={"token": "eyJ...", "nested": {"api_key": "abc.def"}, "name": "ok"},
    )
    assert entry.event_data == {"token": "***", "nested": {"api_key": "***"}, "name": "ok"}


@pytest.mark.postgres
@pytest.mark.parametrize(
    "sql",
    ["UPDATE audit_auditlog SET actor = 'mallory'", "DELETE FROM audit_auditlog"],
)
def test_postgres_refuses_raw_update_and_delete(row, sql):
    with (
        pytest.raises(DatabaseError, match="append-only"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute(sql)
    assert AuditLog.objects.get(pk=row.pk).actor == ACTOR
