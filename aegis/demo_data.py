"""Bulk demo data for benchmarks and for trying the back-office at scale.

This is a loader, not an operation path: it writes rows straight into the tables (COPY on
PostgreSQL, bulk_create elsewhere) so that a million licenses and ten million audit rows load
in minutes. Every license still carries a real token signed by the current key, so validating
seeded licenses exercises the real verification path. The load itself is recorded by one
audit row `demo_data.seeded`.
"""

from __future__ import annotations

import datetime as dt
import json
import random
import uuid
from collections.abc import Callable, Iterator, Sequence

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from audit.models import AuditLog
from audit.services import UNCHAINED_COLUMNS, audit_record
from customers.models import Customer
from licensing import rules, signing
from licensing.models import License

MODULES = [
    f"biz4a_{name}"
    for name in (
        "payroll_drc",
        "accounting_ohada",
        "hr_cameroon",
        "pos_mobile_money",
        "stock_expiry",
        "fleet_telematics",
        "crm_whatsapp",
        "helpdesk_sla",
    )
]
VERSIONS = [["16", "17"], ["17"], ["17", "18"], ["18"], ["18", "19"]]
CODES = [code.value for code in rules.codes(rules.VALIDATE)]  # what validate may answer
# Most validations succeed; the rest spread over the failure codes.
CODE_WEIGHTS = [1 if c != "VALID" else 60 for c in CODES]

Progress = Callable[[str, int, int], None]


def _customer_rows(count: int, now: dt.datetime) -> Iterator[tuple]:
    for i in range(1, count + 1):
        yield (
            f"DEMO-{i:07d}",
            f"Demo Customer {i}",
            f"it{i}@demo.example",
            f"Demo Company {i % 997}",
            "",
            "",
            "",
            i % 50 != 0,  # one customer in fifty is suspended
            now,
            now,
        )


def _license_rows(
    count: int, customers: int, now: dt.datetime, rng: random.Random
) -> Iterator[tuple]:
    issuer = settings.LICENSE_ISSUER
    for _ in range(count):
        license_id = uuid.uuid4()
        n = rng.randint(1, customers)
        customer_id = f"DEMO-{n:07d}"
        module = rng.choice(MODULES)
        versions = rng.choice(VERSIONS)
        license_type = rng.choices(["perpetual", "subscription", "demo"], [3, 6, 1])[0]
        issued = (now - dt.timedelta(seconds=rng.randint(0, 3 * 365 * 86400))).replace(
            microsecond=0
        )
        expires = None
        if license_type != "perpetual":
            days = 365 if license_type == "subscription" else 30
            expires = issued + dt.timedelta(days=days)
        revoked = rng.random() < 0.03
        claims = {
            "jti": str(license_id),
            "iss": issuer,
            "iat": int(issued.timestamp()),
            "customer": {"id": customer_id, "name": f"Demo Customer {n}"},
            "module": {"technical_name": module, "allowed_major_versions": versions},
            "license_type": license_type,
        }
        if expires is not None:
            claims["exp"] = int(expires.timestamp())
        token, kid = signing.sign(claims)
        yield (
            license_id,
            customer_id,
            module,
            json.dumps(versions),
            license_type,
            "revoked" if revoked else "active",
            token,
            kid,
            None,
            issued,
            expires,
            now if revoked else None,
            "demo data" if revoked else "",
            "",
            settings.DEFAULT_MAX_STAGING_INSTANCES,
            issued,
            issued,
        )


def _audit_rows(
    count: int, licenses: Sequence[tuple[uuid.UUID, str, str]], now: dt.datetime, rng: random.Random
) -> Iterator[tuple]:
    """Validation rows spread over the last 30 days, in time order (as they would arrive)."""
    span = 30 * 86400
    start = now - dt.timedelta(seconds=span)
    step = span / max(count, 1)
    for i in range(count):
        license_id, customer_id, module = rng.choice(licenses) if licenses else (None, None, None)
        code = rng.choices(CODES, CODE_WEIGHTS)[0]
        row = {
            "event_type": "license.validated",
            "license_id": license_id,
            "customer_id": customer_id,
            "module_name": module,
            "actor": "public",
            "ip": f"10.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}",
            "request_id": uuid.uuid4().hex,
            "event_data": json.dumps({"code": code, "odoo_version": "17.0", "fingerprint": None}),
            "created_at": start + dt.timedelta(seconds=i * step),
        }
        yield tuple(row[column] for column in UNCHAINED_COLUMNS)


CUSTOMER_COLUMNS = [
    "id",
    "name",
    "email",
    "company",
    "phone",
    "address",
    "notes",
    "is_active",
    "created_at",
    "updated_at",
]
LICENSE_COLUMNS = [
    "id",
    "customer_id",
    "module_name",
    "allowed_major_versions",
    "license_type",
    "status",
    "token",
    "key_id",
    "instance_fingerprint",
    "issued_at",
    "expires_at",
    "revoked_at",
    "revoked_reason",
    "notes",
    "max_staging_instances",
    "created_at",
    "updated_at",
]
# The audit app's own list of the columns a validation row is written with, in its order.
AUDIT_COLUMNS = list(UNCHAINED_COLUMNS)


def _load(
    model, columns: list[str], rows: Iterator[tuple], total: int, label: str, progress: Progress
) -> None:
    table = model._meta.db_table
    every = max(total // 100, 1)
    if connection.vendor == "postgresql":
        connection.ensure_connection()
        with connection.connection.cursor() as cursor:
            cols = ", ".join(columns)
            with cursor.copy(f"COPY {table} ({cols}) FROM STDIN") as copy:
                for done, row in enumerate(rows, 1):
                    copy.write_row(row)
                    if done % every == 0 or done == total:
                        progress(label, done, total)
        return
    batch: list = []
    json_fields = {f.attname for f in model._meta.fields if f.get_internal_type() == "JSONField"}
    for done, row in enumerate(rows, 1):
        values = dict(zip(columns, row, strict=True))
        for name in json_fields & values.keys():
            values[name] = json.loads(values[name])
        batch.append(model(**values))
        if len(batch) >= 5000 or done == total:
            model.objects.bulk_create(batch)
            batch.clear()
            progress(label, done, total)


def seed_demo_data(
    *, actor: str, customers: int, licenses: int, audit: int, seed: int, progress: Progress
) -> dict[str, int]:
    """Load demo customers, licenses (really signed) and validation audit rows.

    Raises ValueError when demo customers already exist (run it on an empty database) or
    when licenses are asked for without customers.
    """
    if licenses and not customers:
        raise ValueError("licenses need at least one customer")
    if Customer.objects.filter(pk__startswith="DEMO-").exists():
        raise ValueError("demo data is already loaded (customers DEMO-… exist)")
    rng = random.Random(seed)  # noqa: S311 - demo data, not secrets
    now = timezone.now().replace(microsecond=0)
    with transaction.atomic():
        _load(
            Customer,
            CUSTOMER_COLUMNS,
            _customer_rows(customers, now),
            customers,
            "customers",
            progress,
        )
        _load(
            License,
            LICENSE_COLUMNS,
            _license_rows(licenses, customers, now, rng),
            licenses,
            "licenses",
            progress,
        )
        sample = list(License.objects.values_list("id", "customer_id", "module_name")[:10_000])
        _load(
            AuditLog,
            AUDIT_COLUMNS,
            _audit_rows(audit, sample, now, rng),
            audit,
            "audit rows",
            progress,
        )
        audit_record(
            event_type="demo_data.seeded",
            actor=actor,
            event_data={"customers": customers, "licenses": licenses, "audit": audit, "seed": seed},
        )
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            for model in (Customer, License, AuditLog):
                cursor.execute(f"ANALYZE {model._meta.db_table}")
    return {"customers": customers, "licenses": licenses, "audit": audit}
