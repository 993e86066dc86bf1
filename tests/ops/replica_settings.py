"""Settings for the replica-routing checks: the `replica` alias is a second, separate test
database (not a mirror of the primary), so a read that lands on the wrong one shows.

Used only by tests/ops/test_replica_routing.py, which runs tests/ops/replica_routing_checks.py
in a child pytest with DATABASE_REPLICA_URL set."""

from aegis.settings import *  # noqa: F403
from aegis.settings import DATABASES

DATABASES["replica"]["TEST"] = {}
