"""Helpers shared by the management commands: domain errors become one-line CommandErrors."""

from __future__ import annotations

import contextlib

from django.core.management.base import CommandError
from django.db import DatabaseError

from aegis.core.exceptions import DomainError


def describe(exc: DomainError) -> str:
    if not exc.errors:
        return exc.detail
    fields = "; ".join(f"{f}: {' '.join(msgs)}" for f, msgs in exc.errors.items())
    single = [m for msgs in exc.errors.values() for m in msgs] == [exc.detail]
    return fields if single else f"{exc.detail} ({fields})"


@contextlib.contextmanager
def domain_errors_as_command_errors():
    try:
        yield
    except DomainError as exc:
        raise CommandError(describe(exc)) from None
    except DatabaseError as exc:
        raise CommandError(
            f"database error: {exc.__class__.__name__}; is the database migrated and reachable?"
        ) from None
