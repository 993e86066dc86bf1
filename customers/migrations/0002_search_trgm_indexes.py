"""Trigram indexes for customer search on PostgreSQL.

`GET /api/v1/customers?search=` matches a substring of the id, name, e-mail or company, and
`GET /api/v1/licenses?search=` first looks up the customers whose id or name matches (Django's
`icontains`: `UPPER(column) LIKE UPPER('%…%')`). No B-tree serves that: the lookup read every
customer on each search; these indexes make it a small fraction of that (docs/performance.md).

Without a pending list (`fastupdate = off`): see licensing/0006. As in licensing/0004: pg_trgm is a trusted extension; where it cannot be created the
indexes are skipped and search stays correct, only slower. Nothing happens on SQLite.
"""

from django.db import DatabaseError, migrations, transaction

INDEXES = {
    "customer_id_trgm_idx": "UPPER(id::text)",
    "customer_name_trgm_idx": "UPPER(name::text)",
    "customer_email_trgm_idx": "UPPER(email::text)",
    "customer_company_trgm_idx": "UPPER(company::text)",
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
            f"CREATE INDEX IF NOT EXISTS {name} ON customers_customer "
            f"USING gin (({expression}) gin_trgm_ops) WITH (fastupdate = off)"
        )
    # Statistics on the indexed expressions, so the planner knows how selective a pattern is.
    schema_editor.execute("ANALYZE customers_customer")


def drop(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for name in INDEXES:
        schema_editor.execute(f"DROP INDEX IF EXISTS {name}")


class Migration(migrations.Migration):
    dependencies = [("customers", "0001_initial")]

    operations = [migrations.RunPython(create, drop)]
