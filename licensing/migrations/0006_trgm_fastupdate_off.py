"""Search indexes write through instead of queueing (PostgreSQL).

A GIN index queues new entries in a pending list (`fastupdate`, up to 4 MB) that every
search then reads whole until VACUUM merges it. After a few thousand licenses were issued
the module index's list held thousands of entries: a search read them on each of its two
queries, far slower than once merged (docs/performance.md). With `fastupdate = off` each
insert updates the index itself (a short module name and the notes: a few trigrams per license),
and searches stay as fast as on a freshly vacuumed table. Entries already queued are merged
here. The customer indexes (customers/0002) are created this way.
"""

from django.db import migrations

INDEXES = ("license_module_trgm_idx", "license_notes_trgm_idx")


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for name in INDEXES:
        with schema_editor.connection.cursor() as cursor:
            cursor.execute("SELECT to_regclass(%s) IS NOT NULL", [name])
            if not cursor.fetchone()[0]:
                continue  # pg_trgm could not be created (licensing/0004): no index
        schema_editor.execute(f"ALTER INDEX {name} SET (fastupdate = off)")
        schema_editor.execute(f"SELECT gin_clean_pending_list('{name}'::regclass)")


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for name in INDEXES:
        schema_editor.execute(f"ALTER INDEX IF EXISTS {name} RESET (fastupdate)")


class Migration(migrations.Migration):
    dependencies = [("licensing", "0005_revoked_at_index")]

    operations = [migrations.RunPython(forwards, backwards)]
