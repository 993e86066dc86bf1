"""Trigram indexes for `GET /api/v1/licenses?search=` on PostgreSQL.

The search matches a substring of the module or the notes (Django's `icontains`:
`UPPER(column) LIKE UPPER('%…%')`), which no B-tree can serve: at a million licenses a
search matching few rows read the whole table (measured, docs/performance.md). GIN trigram
indexes on the same UPPER expressions let PostgreSQL OR them with the customer and id indexes.

pg_trgm ships with PostgreSQL and is a trusted extension (the database owner may create it).
Where it cannot be created, the indexes are skipped and search stays correct, only slower.
Nothing happens on SQLite.
"""

from django.db import DatabaseError, migrations, transaction

INDEXES = {
    "license_module_trgm_idx": "UPPER(module_name::text)",
    "license_notes_trgm_idx": "UPPER(notes)",
}


def create(apps, schema_editor):
    connection = schema_editor.connection
    if connection.vendor != "postgresql":
        return
    try:
        with transaction.atomic(using=connection.alias):
            schema_editor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    except DatabaseError:
        return
    for name, expression in INDEXES.items():
        schema_editor.execute(
            f"CREATE INDEX IF NOT EXISTS {name} ON licensing_license "
            f"USING gin (({expression}) gin_trgm_ops)"
        )
    # Statistics on the indexed expressions: without them the planner guesses how many rows
    # a pattern matches, and took the slow trigram path for common words too (measured,
    # docs/performance.md).
    schema_editor.execute("ANALYZE licensing_license")


def drop(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for name in INDEXES:
        schema_editor.execute(f"DROP INDEX IF EXISTS {name}")


class Migration(migrations.Migration):
    dependencies = [("licensing", "0003_license_stats_idx")]

    operations = [migrations.RunPython(create, drop)]
