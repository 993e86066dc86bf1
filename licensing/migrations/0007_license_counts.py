"""License counts kept by PostgreSQL (licensing/counts.py): the two tables, the triggers
that append every change to the counts, and the counts of the licenses already there.

Creating the triggers locks the license table against writes until this migration commits,
so the initial count sees every license written before and none is counted twice.
Elsewhere (SQLite) the tables stay empty and the statistics count the licenses themselves.
"""

from django.db import migrations, models

KEY = "module_name, license_type, status"
MONTH = "date_trunc('month', expires_at AT TIME ZONE 'UTC')::date"
INTO = f"INSERT INTO licensing_licensecountdelta ({KEY}, expires_month, n)"

# PL/pgSQL plans a statement when it first runs it: each branch names only the transition
# tables its trigger has.
FUNCTION = f"""
CREATE FUNCTION licensing_license_count_delta() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        {INTO}
        SELECT {KEY}, {MONTH}, count(*) FROM new_rows GROUP BY 1, 2, 3, 4;
    ELSIF TG_OP = 'DELETE' THEN
        {INTO}
        SELECT {KEY}, {MONTH}, -count(*) FROM old_rows GROUP BY 1, 2, 3, 4;
    ELSIF TG_OP = 'UPDATE' THEN
        {INTO}
        SELECT {KEY}, month, sum(d) FROM (
            SELECT {KEY}, {MONTH} AS month, 1 AS d FROM new_rows
            UNION ALL
            SELECT {KEY}, {MONTH}, -1 FROM old_rows
        ) AS changed
        GROUP BY 1, 2, 3, 4 HAVING sum(d) <> 0;
    ELSE
        DELETE FROM licensing_licensecountdelta;
        DELETE FROM licensing_licensecount;
    END IF;
    RETURN NULL;
END
$$
"""

TRIGGERS = {
    "licensing_license_count_ins": "AFTER INSERT ON licensing_license "
    "REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT",
    "licensing_license_count_upd": "AFTER UPDATE ON licensing_license "
    "REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT",
    "licensing_license_count_del": "AFTER DELETE ON licensing_license "
    "REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT",
    "licensing_license_count_trunc": "AFTER TRUNCATE ON licensing_license FOR EACH STATEMENT",
}


def count_fields():
    """The columns of both tables (licensing.models._CountRow)."""
    return [
        ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
        ("module_name", models.CharField(max_length=128)),
        ("license_type", models.CharField(max_length=16)),
        ("status", models.CharField(max_length=16)),
        ("expires_month", models.DateField(null=True)),
        ("n", models.BigIntegerField()),
    ]


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(
        "CREATE UNIQUE INDEX licensing_licensecount_key ON licensing_licensecount "
        f"({KEY}, COALESCE(expires_month, 'infinity'::date))"
    )
    schema_editor.execute(FUNCTION)
    for name, when in TRIGGERS.items():
        schema_editor.execute(
            f"CREATE TRIGGER {name} {when} EXECUTE FUNCTION licensing_license_count_delta()"
        )
    schema_editor.execute(
        f"INSERT INTO licensing_licensecount ({KEY}, expires_month, n) "
        f"SELECT {KEY}, {MONTH}, count(*) FROM licensing_license GROUP BY 1, 2, 3, 4"
    )


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for name in TRIGGERS:
        schema_editor.execute(f"DROP TRIGGER IF EXISTS {name} ON licensing_license")
    schema_editor.execute("DROP FUNCTION IF EXISTS licensing_license_count_delta()")


class Migration(migrations.Migration):
    dependencies = [("licensing", "0006_trgm_fastupdate_off")]

    operations = [
        migrations.CreateModel(
            name="LicenseCount",
            fields=count_fields(),
            options={"abstract": False},
        ),
        migrations.CreateModel(
            name="LicenseCountDelta",
            fields=count_fields(),
            options={"abstract": False},
        ),
        migrations.RunPython(forwards, backwards),
    ]
