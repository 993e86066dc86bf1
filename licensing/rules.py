"""The order of the validation codes (CONTRACT §2) and every server-side rule, written once.

A request passes these steps in the order of `ORDER`; the first that fails sets the code,
and a request that passes them all is VALID:

- `TOKEN`: what the token alone decides — MALFORMED, UNKNOWN_KEY, BAD_SIGNATURE,
  WRONG_ISSUER, EXPIRED (licensing/verification.py, the same code offline clients run);
- a `Rule`: what the server's rows decide. `when` is an SQL condition over `license` (the
  license row of the token's `jti`; every column NULL when there is none), `customer` (its
  customer), `validation` (this request's `INPUTS`, by name) and `{activation}` (the seats
  table, for a subquery);
- `USAGE`: what the claims and the request decide — MODULE_MISMATCH, VERSION_NOT_ALLOWED,
  FINGERPRINT_REQUIRED, FINGERPRINT_MISMATCH (licensing/verification.py).

Two actions walk `ORDER` (CONTRACT §2, §9): `VALIDATE` (`POST /licenses/validate`) and
`ACTIVATE` (`POST /licenses/activate`). A rule names the actions it applies to: NOT_ACTIVATED
is validate's (activate is how an instance gets its seat), SEATS_EXCEEDED activate's.
Everything per action is generated from `ORDER`: its SQL (`decision`, `decide`) and the codes
it may answer (`codes`: API schema, metrics labels).

The whole decision is one SQL `CASE` generated from `ORDER`. A validation's is run by the
statement that records its audit row (audit.services.record_validations): on PostgreSQL and
SQLite, for one validation or a batch, with the token checked from the cache or not. An
activation's is `decide`, read-only, run by licensing/seats.py under the license row's lock.

A new server-side code touches three places: its `Code` member and its message (MESSAGES) in
licensing/verification.py, and its `Rule` here, in its place, with its actions. A rule that
needs a new input from the request adds it to `INPUTS` (or `ACTION_INPUTS`) and to
licensing/validation.py's `begin` (and licensing/seats.py for an activation's input).
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from django.db import connections, models, router

from aegis.core.db import cast_type, prepared_cursor
from audit.services import Decision
from customers.models import Customer
from licensing.models import Activation, Environment, License, LicenseStatus
from licensing.verification import Code

TOKEN = "token"
USAGE = "usage"

VALIDATE = "validate"
ACTIVATE = "activate"
ACTIONS = frozenset({VALIDATE, ACTIVATE})


@dataclass(frozen=True)
class Rule:
    code: Code
    when: str
    actions: frozenset[str] = ACTIONS


# A seat is held while its activation is not released and its lease runs: an instance that
# stops checking in frees its seat when the lease runs out, with no job. The same condition
# in SQL (`held`: `seat` is the activation row, `now` an SQL expression; the rules below and
# the heartbeat of licensing/seats.py) and for the ORM (`holding`: the seats' selectors and
# admin); a change touches both.
def held(now: str = "validation.now") -> str:
    return f"seat.released_at IS NULL AND seat.lease_expires_at > {now}"


def holding(now: dt.datetime) -> models.Q:
    return models.Q(released_at__isnull=True, lease_expires_at__gt=now)


# The instance's own seat, and the seats taken in the request's environment.
_OWN_SEAT = (
    "SELECT 1 FROM {activation} seat WHERE seat.license_id = license.id "  # noqa: S608
    "AND seat.fingerprint = validation.fingerprint AND " + held()
)
_SEATS_TAKEN = (
    "SELECT count(*) FROM {activation} seat WHERE seat.license_id = license.id "  # noqa: S608
    "AND seat.environment = validation.environment AND " + held()
)

ORDER: tuple[str | Rule, ...] = (
    TOKEN,
    Rule(Code.UNKNOWN_LICENSE, "license.id IS NULL"),
    Rule(Code.REVOKED, f"license.status = '{LicenseStatus.REVOKED.value}'"),
    Rule(Code.SUSPENDED, "NOT customer.is_active"),
    USAGE,
    # A license with a seat limit validates only for an instance holding a seat. (CASE, not
    # AND: PostgreSQL then looks for the seat only for a seat-limited license, instead of
    # hashing the activations for every statement.)
    Rule(
        Code.NOT_ACTIVATED,
        f"CASE WHEN license.max_instances IS NULL THEN FALSE ELSE NOT EXISTS ({_OWN_SEAT}) END",
        actions=frozenset({VALIDATE}),
    ),
    # A new seat (or one whose lease ran out, or in another environment) needs a free one
    # of its environment: production counts against max_instances, staging against
    # max_staging_instances; no limit at all when max_instances is NULL. Race-safe because
    # licensing/seats.py runs it holding the license row's lock.
    Rule(
        Code.SEATS_EXCEEDED,
        f"license.max_instances IS NOT NULL "
        f"AND NOT EXISTS ({_OWN_SEAT} AND seat.environment = validation.environment) "
        f"AND ({_SEATS_TAKEN}) >= CASE validation.environment "
        f"WHEN '{Environment.STAGING.value}' THEN license.max_staging_instances "
        f"ELSE license.max_instances END",
        actions=frozenset({ACTIVATE}),
    ),
)

# The inputs of one request: the license to look up (NULL when the token step failed), the
# codes the verifier gave for the token and usage steps (NULL when that step passed), the
# fingerprint presented (NULL: none) and the instant the request is decided at (bound, so
# that SQLite and PostgreSQL compare the same values).
INPUTS: tuple[tuple[str, models.Field], ...] = (
    ("jti", License._meta.pk),
    ("token_code", models.TextField()),
    ("usage_code", models.TextField()),
    ("fingerprint", models.TextField()),
    ("now", Activation._meta.get_field("lease_expires_at")),
)
# What only some actions send.
ACTION_INPUTS: dict[str, tuple[tuple[str, models.Field], ...]] = {
    ACTIVATE: (("environment", models.TextField()),),
}


def codes(action: str) -> list[Code]:
    """The codes `action` may answer, in the contract's order: every code but those of the
    rules of other actions."""
    others = {s.code for s in ORDER if isinstance(s, Rule) and action not in s.actions}
    return [code for code in Code if code not in others]


def _when(step: str | Rule, tables: Mapping[str, str]) -> str:
    if step == TOKEN:
        return "WHEN validation.token_code IS NOT NULL THEN validation.token_code"
    if step == USAGE:
        return "WHEN validation.usage_code IS NOT NULL THEN validation.usage_code"
    return f"WHEN {step.when.format(**tables)} THEN '{step.code.value}'"


def _applies(step: str | Rule, action: str) -> bool:
    return not isinstance(step, Rule) or action in step.actions


@functools.cache
def decision(alias: str, action: str = VALIDATE) -> Decision:
    """The decision of `ORDER` for `action`, in the SQL of the database `alias`."""
    if action not in ACTIONS:
        raise ValueError(f"unknown action {action!r}")
    quote = connections[alias].ops.quote_name
    tables = {"activation": quote(Activation._meta.db_table)}
    whens = " ".join(_when(step, tables) for step in ORDER if _applies(step, action))
    return Decision(
        inputs=INPUTS + ACTION_INPUTS.get(action, ()),
        joins=(
            f"LEFT JOIN {quote(License._meta.db_table)} license ON license.id = validation.jti "
            f"LEFT JOIN {quote(Customer._meta.db_table)} customer "
            "ON customer.id = license.customer_id"
        ),
        code=f"CASE {whens} ELSE '{Code.VALID.value}' END",
        license_id="license.id",
    )


@functools.cache
def _decide_sql(alias: str, action: str) -> str:
    connection = connections[alias]
    rule = decision(alias, action)
    names = ", ".join(name for name, _ in rule.inputs)
    if connection.vendor == "postgresql":
        values = ", ".join(
            f"CAST(%s AS {cast_type(field, connection)})" for _, field in rule.inputs
        )
    else:  # SQLite: a CAST to "datetime" would turn a timestamp into a number
        values = ", ".join(["%s"] * len(rule.inputs))
    return (
        f"WITH validation ({names}) AS (SELECT {values}) "  # noqa: S608
        f"SELECT {rule.code} FROM validation {rule.joins}"
    )


def decide(inputs: Mapping[str, Any], *, action: str, alias: str | None = None) -> Code:
    """The code `ORDER` gives one request for `action` (`inputs`: every input of the
    action, by name), in one read-only statement. Writes nothing: a caller that acts on the
    answer (licensing/seats.py) holds the license row's lock while it asks."""
    alias = alias or router.db_for_write(License)
    connection = connections[alias]
    params = [
        field.get_db_prep_value(inputs[name], connection)
        for name, field in decision(alias, action).inputs
    ]
    with prepared_cursor(alias) as cursor:
        cursor.execute(_decide_sql(alias, action), params)
        return Code(cursor.fetchone()[0])
