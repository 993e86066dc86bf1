"""Fixtures of the operations tests: a fresh database and a signing key for server processes."""

from __future__ import annotations

import pytest
from django.db import connection

from licensing import signing


def postgres_url(name: str, *, port: int | None = None) -> str:
    s = connection.settings_dict
    auth = s["USER"] + (f":{s['PASSWORD']}" if s["PASSWORD"] else "")
    return f"postgres://{auth}@{s['HOST'] or '127.0.0.1'}:{port or s['PORT'] or 5432}/{name}"


def _admin_connection():
    import psycopg

    s = connection.settings_dict
    return psycopg.connect(
        host=s["HOST"] or "127.0.0.1",
        port=s["PORT"] or 5432,
        user=s["USER"],
        password=s["PASSWORD"] or None,
        dbname="postgres",
        autocommit=True,
    )


@pytest.fixture
def server_db_name():
    """On PostgreSQL, the name of a fresh, empty database for a server process (dropped after)."""
    if connection.vendor != "postgresql":
        yield None
        return
    from psycopg import sql

    name = f"{connection.settings_dict['NAME']}_server"
    drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
    with _admin_connection() as admin:
        admin.execute(drop)
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    yield name
    with _admin_connection() as admin:
        admin.execute(drop)


@pytest.fixture
def server_database(server_db_name, tmp_path) -> str:
    """DATABASE_URL of a fresh, empty database for a server process."""
    if server_db_name is None:
        return f"sqlite:///{tmp_path / 'server.sqlite3'}"
    return postgres_url(server_db_name)


@pytest.fixture
def server_keys(tmp_path):
    """A keys folder holding the signing key `deploy-01`."""
    path = tmp_path / "server-keys"
    path.mkdir()
    signing.write_keypair(path, "deploy-01")
    return path


@pytest.fixture(scope="session")
def static_root(tmp_path_factory):
    """One STATIC_ROOT for every server of the session: the first entrypoint collects the
    static files (with the production manifest), the next ones find them there."""
    return tmp_path_factory.mktemp("static")
