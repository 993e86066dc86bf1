"""Read-replica routing: with `DATABASE_REPLICA_URL` set, list and statistics reads go to a
PostgreSQL streaming replica; everything else stays on the primary.

Which reads may be stale by the replication lag (usually milliseconds, seconds at worst)?
Only those a request opts into (`replica_reads()`), and `ReplicaReadsMiddleware` opts in
exactly the GET/HEAD requests of the list and statistics routes (`REPLICA_ROUTES`). So:

- writes always go to the primary;
- the validate lookup (a POST) reads the primary: a revocation is seen by the very next
  validation, never after the lag;
- a detail GET (`/licenses/{id}`) reads the primary, so a client reads what it just wrote;
- API keys, users and sessions are always read from the primary, so a revoked key stops
  working at once, whichever route it is used on;
- inside a transaction every read goes to the primary (services lock and re-read rows);
- the validation statistics are computed from rollups on the primary (audit/rollups.py).
"""

from __future__ import annotations

import contextvars
import re
from collections.abc import Iterator
from contextlib import contextmanager

from django.conf import settings
from django.db import connections

DEFAULT = "default"
REPLICA = "replica"

# GET/HEAD routes whose reads may lag: lists and statistics.
REPLICA_ROUTES = re.compile(
    r"^/api/v1/(licenses|customers|admin/stats|admin/audit-logs)/?$",
)
# Models read from the primary even inside replica_reads(): authentication must see a
# revocation at once, and the rollup tables are written on read.
PRIMARY_ONLY = frozenset(
    {
        "aegis.apikey",
        "auth.user",
        "auth.group",
        "auth.permission",
        "sessions.session",
        "audit.rollupcursor",
        "audit.validationrollup",
    }
)

_replica_reads: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "aegis_replica_reads", default=False
)


def replica_configured() -> bool:
    return REPLICA in settings.DATABASES


@contextmanager
def replica_reads() -> Iterator[None]:
    """Let the reads in this block go to the replica (when one is configured)."""
    token = _replica_reads.set(True)
    try:
        yield
    finally:
        _replica_reads.reset(token)


class PrimaryReplicaRouter:
    def db_for_read(self, model, **hints):
        if (
            _replica_reads.get()
            and replica_configured()
            and model._meta.label_lower not in PRIMARY_ONLY
            and not connections[DEFAULT].in_atomic_block
        ):
            return REPLICA
        return DEFAULT

    def db_for_write(self, model, **hints):
        return DEFAULT

    def allow_relation(self, obj1, obj2, **hints):
        return True  # the replica holds the same rows as the primary

    def allow_migrate(self, db, app_label, model_name=None, **hints):
        return None  # migrate runs against the primary; the replica follows it


class ReplicaReadsMiddleware:
    """Opt the GET/HEAD requests of REPLICA_ROUTES into replica reads."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.method in ("GET", "HEAD") and REPLICA_ROUTES.match(request.path_info):
            with replica_reads():
                return self.get_response(request)
        return self.get_response(request)
