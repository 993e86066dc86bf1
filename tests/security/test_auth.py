"""API keys under attack (CONTRACT §5): where a key is read from, what is kept of it, what a
guesser gets, and what a forged forwarding header buys.

- a key is read from the `X-API-Key` header only — never the query string, the body, a
  cookie or `Authorization`;
- after keys are created (by the service and the command) and used (rightly and wrongly),
  no table and no log line holds a raw key or its secret half: only prefixes and hashes;
- wrong keys are counted per client address: past `THROTTLE_RATE_FAILED_API_KEY` that
  address gets 429 for any key, before any database lookup, while other addresses are
  unaffected;
- `X-Forwarded-For` and its cousins never reset a throttle (REMOTE_ADDR only).
"""

from __future__ import annotations

import io
import logging
import time
from contextlib import contextmanager

import pytest
from django.apps import apps
from django.core.management import call_command
from rest_framework.test import APIClient

from aegis.core.api import ratelimit
from aegis.core.api.scopes import Scope
from aegis.core.logging import formatter
from aegis.models import APIKey
from aegis.services import api_key_revoke
from audit.models import AuditLog
from tests.api.conftest import assert_error, client_with

pytestmark = pytest.mark.django_db

LICENSES = "/api/v1/licenses"
ISSUE = {
    "customer_id": "CUST-001",
    "module_name": "biz4a_payroll_drc",
    "allowed_major_versions": ["17"],
    "license_type": "perpetual",
}
ATTACKER, OFFICE = "203.0.113.66", "198.51.100.7"
FORWARDING_HEADERS = {
    "HTTP_X_FORWARDED_FOR": "10.9.8.7",
    "HTTP_X_REAL_IP": "10.9.8.7",
    "HTTP_FORWARDED": "for=10.9.8.7",
    "HTTP_TRUE_CLIENT_IP": "10.9.8.7",
    "HTTP_CF_CONNECTING_IP": "10.9.8.7",
    "HTTP_X_CLIENT_IP": "10.9.8.7",
}


# --- Where a key may come from --------------------------------------------------------------


@pytest.mark.parametrize(
    "query", ["api_key={key}", "X-API-Key={key}", "x_api_key={key}", "key={key}", "token={key}"]
)
def test_a_key_in_the_query_string_is_not_read(anon, make_key, query):
    key = make_key(Scope.ADMIN)
    assert_error(anon.get(f"{LICENSES}?{query.format(key=key)}"), 401, "not_authenticated")


@pytest.mark.parametrize("field", ["api_key", "X-API-Key", "x_api_key", "key"])
def test_a_key_in_the_body_is_not_read_and_nothing_is_written(anon, make_key, customer, field):
    key = make_key(Scope.ADMIN)
    response = anon.post(LICENSES, ISSUE | {field: key}, format="json")
    assert_error(response, 401, "not_authenticated")
    assert not AuditLog.objects.filter(event_type="license.issued").exists()


@pytest.mark.parametrize(
    "header",
    [
        {"HTTP_AUTHORIZATION": "Api-Key {key}"},
        {"HTTP_AUTHORIZATION": "Bearer {key}"},
        {"HTTP_AUTHORIZATION": "{key}"},
        {"HTTP_COOKIE": "X-API-Key={key}"},
        {"HTTP_X_API_TOKEN": "{key}"},
        {"HTTP_API_KEY": "{key}"},
    ],
    ids=lambda h: next(iter(h)),
)
def test_a_key_in_any_other_header_is_not_read(anon, make_key, header):
    key = make_key(Scope.ADMIN)
    headers = {name: value.format(key=key) for name, value in header.items()}
    assert_error(anon.get(LICENSES, **headers), 401, "not_authenticated")


def test_the_x_api_key_header_is_read(make_key):
    """The positive control of the tests above: the same key in its header works."""
    assert client_with(make_key(Scope.ADMIN)).get(LICENSES).status_code == 200


# --- Nothing keeps a raw key ----------------------------------------------------------------


@contextmanager
def captured_logs():
    """Every log line the project would write, at DEBUG, through its own formatter."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter("json"))
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield stream
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


def every_stored_value() -> str:
    """The text of every row of every table the project's models know."""
    rows = []
    for model in apps.get_models():
        rows.extend(repr(row) for row in model._base_manager.values_list())
    return "\n".join(rows)


def test_raw_keys_are_never_stored_nor_logged(make_key, customer, capsys):
    with captured_logs() as logs:
        by_service = make_key(Scope.ADMIN, "by-service")
        call_command("create_api_key", "--name", "by-command", "--scope", "issuer", "--quiet")
        by_command = capsys.readouterr().out.strip()
        raws = [by_service, by_command]
        for raw in raws:
            prefix, secret = raw.split(".")
            good = client_with(raw)
            assert good.get(LICENSES).status_code == 200
            assert good.post(LICENSES, ISSUE, format="json").status_code == 201
            # The guesses an attacker would make, and the mistakes a user would.
            wrong_last = "y" if secret.endswith("x") else "x"  # a different last character
            assert (
                client_with(f"{prefix}.{secret[:-1]}{wrong_last}").get(LICENSES).status_code == 401
            )
            assert client_with(f"{prefix}.{secret}x").get(LICENSES).status_code == 401
            assert client_with(raw + " ").get(LICENSES).status_code == 401
            assert APIClient().get(f"{LICENSES}?api_key={raw}").status_code == 401
            APIClient().post(
                "/api/v1/licenses/validate", {"token": raw, "api_key": raw}, format="json"
            )
        api_key_revoke(actor="user:tester", prefix=by_service.split(".")[0])
        assert client_with(by_service).get(LICENSES).status_code == 401
    written = logs.getvalue()
    assert "license.issued" in every_stored_value()  # the scan reads real rows
    assert "request_finished" in written or "/api/v1/licenses" in written  # and real log lines
    stored = every_stored_value()
    for raw in raws:
        prefix, secret = raw.split(".")
        assert secret not in stored and raw not in stored
        assert secret not in written and raw not in written
        key = APIKey.objects.get(prefix=prefix)
        assert key.hashed_key and secret not in key.hashed_key and key.id.startswith(prefix)
    created = AuditLog.objects.filter(event_type="api_key.created")
    assert {row.event_data["prefix"] for row in created} == {r.split(".")[0] for r in raws}


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_a_logged_traceback_never_shows_frame_locals(make_key, log_format):
    """A key (or a token) held in a local variable of a failing frame stays out of the log,
    whatever renders the traceback (with `rich` importable, structlog's text renderer would
    print every frame's locals)."""
    raw = make_key(Scope.ADMIN)
    secret_half = raw.split(".")[1]
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter(log_format))
    logger = logging.getLogger("aegis.security.test")
    logger.addHandler(handler)
    try:
        held = {"unmasked": secret_half}  # noqa: F841  (a local the traceback could show)
        raise RuntimeError("boom")
    except RuntimeError:
        logger.exception("failure while holding a key")
    finally:
        logger.removeHandler(handler)
    written = stream.getvalue()
    assert "boom" in written and "RuntimeError" in written
    assert secret_half not in written


# --- Guessing keys: 429 per address, before the database ------------------------------------


def guesses(real_key: str, n: int) -> list[str]:
    """Malformed keys, unknown prefixes, and the real prefix with wrong secrets."""
    prefix = real_key.partition(".")[0]
    shapes = [
        lambda i: f"{prefix}.{i:032d}",
        lambda i: f"Zz{i:06d}.{'a' * 32}",
        lambda i: f"garbage-{i}",
        lambda i: f"{prefix}.",
    ]
    return [shapes[i % len(shapes)](i) for i in range(n)]


def test_two_hundred_wrong_keys_from_one_address_get_429_before_the_database(
    make_key, settings, django_assert_num_queries
):
    settings.THROTTLE_RATE_FAILED_API_KEY = "30/min"
    good = make_key(Scope.READONLY)
    attacker = APIClient(REMOTE_ADDR=ATTACKER)
    statuses = []
    for n, key in enumerate(guesses(good, 200)):
        if n < 30:
            response = attacker.get(LICENSES, HTTP_X_API_KEY=key)
        else:
            with django_assert_num_queries(0):  # refused before any lookup
                response = attacker.get(LICENSES, HTTP_X_API_KEY=key)
        statuses.append(response.status_code)
        if response.status_code == 429:
            assert_error(response, 429, "throttled")
            assert 1 <= int(response["Retry-After"]) <= 60
        else:
            assert_error(response, 401, "invalid_api_key")
    assert statuses == [401] * 30 + [429] * 170
    # The good key from another address is unaffected...
    office = APIClient(REMOTE_ADDR=OFFICE)
    assert office.get(LICENSES, HTTP_X_API_KEY=good).status_code == 200
    # ...and so is a key-less public request from the attacker's own address.
    fingerprint = {"db_uuid": "abc", "domain": "erp.example.com"}
    assert (
        attacker.post("/api/v1/licenses/fingerprint", fingerprint, format="json").status_code == 200
    )
    # From the attacker's address even the good key waits for the window to end: the guard
    # cannot tell a stolen good key from a lucky guess.
    assert_error(attacker.get(LICENSES, HTTP_X_API_KEY=good), 429, "throttled")


def test_the_lockout_ends_with_its_window(make_key, settings, monkeypatch):
    settings.THROTTLE_RATE_FAILED_API_KEY = "3/min"
    good = make_key(Scope.READONLY)
    attacker = APIClient(REMOTE_ADDR=ATTACKER)
    for key in guesses(good, 3):
        assert attacker.get(LICENSES, HTTP_X_API_KEY=key).status_code == 401
    assert attacker.get(LICENSES, HTTP_X_API_KEY=good).status_code == 429
    later = time.time() + 60
    monkeypatch.setattr(ratelimit.time, "time", lambda: later)
    assert attacker.get(LICENSES, HTTP_X_API_KEY=good).status_code == 200


def test_good_keys_do_not_count_as_failures(make_key, settings):
    settings.THROTTLE_RATE_FAILED_API_KEY = "3/min"
    settings.THROTTLE_RATE_API_KEY = "1000/min"
    office = client_with(make_key(Scope.READONLY))
    for _ in range(20):
        assert office.get(LICENSES).status_code == 200


def test_the_guard_is_off_with_rate_limiting(make_key, settings):
    settings.THROTTLE_RATE_FAILED_API_KEY = "3/min"
    settings.RATE_LIMIT_ENABLED = False
    attacker = APIClient(REMOTE_ADDR=ATTACKER)
    for key in guesses(make_key(Scope.READONLY), 10):
        assert_error(attacker.get(LICENSES, HTTP_X_API_KEY=key), 401, "invalid_api_key")


def test_a_revoked_key_counts_as_a_wrong_one(revoked_key_factory, settings):
    settings.THROTTLE_RATE_FAILED_API_KEY = "2/min"
    revoked = revoked_key_factory()
    client = APIClient(REMOTE_ADDR=ATTACKER)
    assert_error(client.get(LICENSES, HTTP_X_API_KEY=revoked), 401, "invalid_api_key")
    assert_error(client.get(LICENSES, HTTP_X_API_KEY=revoked), 401, "invalid_api_key")
    assert_error(client.get(LICENSES, HTTP_X_API_KEY=revoked), 429, "throttled")


@pytest.fixture
def revoked_key_factory(make_key):
    def make() -> str:
        raw = make_key(Scope.ADMIN, "to-revoke")
        api_key_revoke(actor="user:tester", prefix=raw.partition(".")[0])
        return raw

    return make


# --- Forwarding headers never reset a throttle ----------------------------------------------


@pytest.mark.parametrize("header", list(FORWARDING_HEADERS))
def test_forwarding_headers_do_not_reset_the_public_throttle(anon, settings, header):
    settings.THROTTLE_RATE_PUBLIC = "3/min"
    body = {"db_uuid": "abc", "domain": "erp.example.com"}
    url = "/api/v1/licenses/fingerprint"
    for _ in range(3):
        assert anon.post(url, body, format="json").status_code == 200
    for n in range(5):
        spoofed = {header: f"10.9.8.{n}", "HTTP_X_FORWARDED_FOR": f"10.0.0.{n}, 10.9.8.{n}"}
        assert_error(anon.post(url, body, format="json", **spoofed), 429, "throttled")
    # The address itself (REMOTE_ADDR, set by the server or a PROXY-protocol load balancer)
    # is what counts: another one has its own budget.
    assert anon.post(url, body, format="json", REMOTE_ADDR="10.9.8.7").status_code == 200


def test_forwarding_headers_do_not_reset_the_wrong_key_guard(make_key, settings):
    settings.THROTTLE_RATE_FAILED_API_KEY = "3/min"
    good = make_key(Scope.READONLY)
    attacker = APIClient(REMOTE_ADDR=ATTACKER)
    for key in guesses(good, 3):
        assert attacker.get(LICENSES, HTTP_X_API_KEY=key).status_code == 401
    for key in guesses(good, 5):
        response = attacker.get(LICENSES, HTTP_X_API_KEY=key, **FORWARDING_HEADERS)
        assert_error(response, 429, "throttled")


def test_forwarding_headers_do_not_reset_a_keys_throttle(make_key, settings):
    settings.THROTTLE_RATE_API_KEY = "2/min"
    client = client_with(make_key(Scope.READONLY))
    assert client.get(LICENSES).status_code == 200
    assert client.get(LICENSES).status_code == 200
    for header, value in FORWARDING_HEADERS.items():
        assert_error(client.get(LICENSES, **{header: value}), 429, "throttled")
        assert_error(client.get(LICENSES, REMOTE_ADDR="10.1.1.1"), 429, "throttled")
