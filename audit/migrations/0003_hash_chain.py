"""The audit hash chain (audit/chain.py): three columns, a partial unique index, and the
chaining of rows written before it existed, oldest first.

The backfill is the one time rows are updated: on PostgreSQL the append-only trigger is
switched off for it inside this migration's transaction, so no other client can use the gap.
"""

from django.db import migrations, models

TRIGGER = "audit_auditlog_append_only"


def chain_existing_rows(apps, schema_editor):
    from audit import chain

    AuditLog = apps.get_model("audit", "AuditLog")
    db = schema_editor.connection.alias
    rows = (
        AuditLog.objects.using(db)
        .filter(chain_seq__isnull=True)
        .exclude(event_type__in=chain.UNCHAINED_EVENT_TYPES)
        .order_by("id")
    )
    if not rows.exists():
        return
    postgres = schema_editor.connection.vendor == "postgresql"
    if postgres:
        schema_editor.execute(f"ALTER TABLE audit_auditlog DISABLE TRIGGER {TRIGGER}")
    seq, prev = 0, chain.GENESIS
    for row in rows.iterator(chunk_size=2000):
        seq += 1
        row.chain_seq, row.prev_hash = seq, prev
        row.hash = prev = chain.row_hash(row)
        AuditLog.objects.using(db).filter(pk=row.pk).update(
            chain_seq=row.chain_seq, prev_hash=row.prev_hash, hash=row.hash
        )
    if postgres:
        schema_editor.execute(f"ALTER TABLE audit_auditlog ENABLE TRIGGER {TRIGGER}")


class Migration(migrations.Migration):

    dependencies = [
        ('audit', '0002_append_only_trigger'),
    ]

    operations = [
        migrations.AddField(
            model_name='auditlog',
            name='chain_seq',
            field=models.BigIntegerField(blank=True, editable=False, null=True),
        ),
        migrations.AddField(
            model_name='auditlog',
            name='hash',
            field=models.CharField(blank=True, editable=False, max_length=64, null=True),
        ),
        migrations.AddField(
            model_name='auditlog',
            name='prev_hash',
            field=models.CharField(blank=True, editable=False, max_length=64, null=True),
        ),
        migrations.AddConstraint(
            model_name='auditlog',
            constraint=models.UniqueConstraint(condition=models.Q(('chain_seq__isnull', False)), fields=('chain_seq',), name='audit_chain_seq_uniq'),
        ),
        migrations.RunPython(chain_existing_rows, migrations.RunPython.noop),
    ]
