"""The application gunicorn serves (aegis.asgi): validations answered on the event loop
(licensing/validate_asgi.py) exactly as Django answers them, everything else by Django.

Requests are ASGI messages handed to the real stack (the transport in front of a2wsgi in
front of Django's WSGI handler), on one event loop per test; the transport's own pooled
connections see committed rows only, so these tests commit (transaction=True).
"""

from __future__ import annotations

import asyncio
import copy
import json
import logging
import os
import subprocess
import sys
import uuid

import pytest
from a2wsgi import WSGIMiddleware
from django.core.cache import cache
from django.core.handlers.wsgi import WSGIHandler
from django.db import connection
from django.utils.datastructures import CaseInsensitiveMapping

from aegis.asgi import AccessLog
from aegis.core.api import ratelimit
from audit import services as audit_services
from audit.models import AuditLog
from customers.models import Customer
from customers.services import customer_create
from licensing import validate_asgi
from licensing.models import License
from licensing.services import license_revoke
from licensing.validate_asgi import ValidateOnLoop
from tests.conftest import ACTOR, audit_inserts_refused, cache_unreachable_now
from tests.perf.conftest import comparable_audit, last_audit

URL = "/api/v1/licenses/validate"
MODULE = "biz4a_payroll_drc"
pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


class Counted:
    """Django's application (WSGI, run in threads by a2wsgi), counting what it is handed."""

    def __init__(self) -> None:
        self.app = WSGIMiddleware(WSGIHandler(), workers=2)
        self.calls = 0

    async def __call__(self, scope, receive, send):
        self.calls += 1
        return await self.app(scope, receive, send)


@pytest.fixture
def loop():
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


@pytest.fixture
def django_app() -> Counted:
    return Counted()


@pytest.fixture
def fast(django_app, loop):
    app = ValidateOnLoop(django_app)
    yield app
    if app.database is not None:
        loop.run_until_complete(app.database.close())
    # Django's connections in a2wsgi's threads stay open (persistent connections): end
    # them, so the test database can be flushed and dropped.
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )


async def request(app, body, *, headers=(), method="POST", path=URL, scheme="http"):
    """One HTTP request through `app` on the running loop: (status, headers, body)."""
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": scheme,
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"testserver"),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(raw)).encode()),
            *((k.encode(), v.encode()) for k, v in headers),
        ],
        "client": ("10.1.2.3", 50000),
        "server": ("testserver", 80),
    }
    messages = [{"type": "http.request", "body": raw, "more_body": False}]
    sent = []

    async def receive():
        if messages:
            return messages.pop(0)
        await asyncio.sleep(3600)  # the client waits for the answer

    async def send(message):
        sent.append(message)

    await app(scope, receive, send)
    start = next(m for m in sent if m["type"] == "http.response.start")
    answer_headers = CaseInsensitiveMapping({k.decode(): v.decode() for k, v in start["headers"]})
    content = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], answer_headers, content


def call(loop, app, body, **options):
    return loop.run_until_complete(request(app, body, **options))


def body_for(license, **fields) -> dict:
    return {"token": license.token, "module_name": MODULE, "odoo_version": "17.0"} | fields


def comparable(headers) -> dict:
    return {k.lower(): v for k, v in headers.items() if k.lower() != "x-request-id"}


@pytest.mark.parametrize(
    "fields",
    [
        {},
        {"odoo_version": "16.0"},
        {"module_name": "other_module"},
        {"token": "not-a-token"},
        {"fingerprint": "sha256:" + "0" * 64},
    ],
    ids=lambda f: json.dumps(f)[:40],
)
def test_answers_as_django_does(loop, fast, django_app, make_license, fields):
    license = make_license(license_type="subscription", duration_days=30)
    body = body_for(license, **fields)
    django = call(loop, django_app, body)
    django_audit = last_audit()
    call(loop, fast, body)  # the first one teaches the headers
    calls = django_app.calls
    ours = call(loop, fast, body)
    assert django_app.calls == calls  # answered on the event loop
    assert last_audit() == django_audit
    assert ours[0] == django[0] == 200
    assert ours[2] == django[2]
    assert comparable(ours[1]) == comparable(django[1])


def test_revocation_is_seen_on_the_next_request(loop, fast, make_license):
    license = make_license()
    call(loop, fast, body_for(license))
    assert json.loads(call(loop, fast, body_for(license))[2])["code"] == "VALID"
    license_revoke(actor=ACTOR, license_id=license.pk, reason="chargeback")
    assert json.loads(call(loop, fast, body_for(license))[2])["code"] == "REVOKED"


def test_the_audit_row_has_the_request_id_and_address(loop, fast, make_license):
    license = make_license()
    call(loop, fast, body_for(license))
    status, headers, _ = call(loop, fast, body_for(license), headers=[("x-request-id", "odoo-7")])
    assert status == 200 and headers["X-Request-ID"] == "odoo-7"
    row = AuditLog.objects.latest("id")
    assert (row.request_id, str(row.ip), row.event_type) == (
        "odoo-7",
        "10.1.2.3",
        "license.validated",
    )


@pytest.mark.parametrize(
    ("headers", "body", "status"),
    [
        ([("origin", "https://erp.example.com")], None, 200),
        ([("accept", "application/xml")], None, 406),
        ([], b"{", 400),
        ([], {"token": 1, "module_name": MODULE, "odoo_version": "17"}, 400),
    ],
    ids=["origin", "accept", "json", "type"],
)
def test_other_requests_go_to_django(loop, fast, django_app, make_license, headers, body, status):
    license = make_license()
    call(loop, fast, body_for(license))
    calls = django_app.calls
    answer = call(loop, fast, body if body is not None else body_for(license), headers=headers)
    assert django_app.calls == calls + 1
    assert answer[0] == status
    assert answer[1]["Content-Type"] == "application/json"


def test_a_host_django_refuses_goes_to_django(loop, fast, django_app, make_license, settings):
    license = make_license()
    call(loop, fast, body_for(license))
    settings.ALLOWED_HOSTS = ["license.example.com"]
    calls = django_app.calls
    status, _headers, _content = call(loop, fast, body_for(license))
    assert django_app.calls == calls + 1  # Django's own host check answered
    assert status == 400


def test_plain_http_goes_to_django_when_https_is_required(loop, make_license, settings):
    settings.SECURE_SSL_REDIRECT = True  # read by Django's middleware when it is loaded
    django_app = Counted()
    app = ValidateOnLoop(django_app)
    license = make_license()
    status, headers, _content = call(loop, app, body_for(license))
    assert status == 301 and headers["Location"].startswith("https://")
    call(loop, app, body_for(license))
    assert django_app.calls == 2  # plain HTTP is always Django's
    call(loop, app, body_for(license), scheme="https")  # Django answers: the https headers
    status, headers, content = call(loop, app, body_for(license), scheme="https")
    assert django_app.calls == 3  # answered on the loop
    assert status == 200 and json.loads(content)["code"] == "VALID"
    loop.run_until_complete(app.database.close())


def test_on_another_database_every_validation_goes_to_django(
    loop, fast, django_app, make_license, monkeypatch
):
    """The pool speaks PostgreSQL only: on SQLite (tests/ops/test_deploy.py runs the server
    on it) Django answers every validation and the pool is never opened."""
    assert validate_asgi.on_postgresql()
    monkeypatch.setattr(validate_asgi, "on_postgresql", lambda: False)
    license = make_license()
    answers = [call(loop, fast, body_for(license)) for _ in range(3)]
    assert [status for status, *_ in answers] == [200] * 3
    assert django_app.calls == 3
    assert fast.database is None


def test_a_database_failure_is_answered_by_django(loop, fast, make_license, service_runs):
    license = make_license()
    call(loop, fast, body_for(license))
    service_runs.clear()  # the first request, answered by Django, taught the headers
    rows = AuditLog.objects.count()
    with audit_inserts_refused("fail_audit_asgi"):
        status, _headers, content = call(loop, fast, body_for(license))
    assert status == 503
    assert json.loads(content)["code"] == "service_unavailable"
    assert len(service_runs) == 1  # the action tried on Django's connection, and failed too
    assert AuditLog.objects.count() == rows


@pytest.fixture
def batches(monkeypatch) -> list[int]:
    """The size of every batch statement sent (a spy: the real statement runs)."""
    sizes = Batches()
    real = audit_services.arecord_validations

    async def counted(connection, alias, decision, rows):
        sizes.append(len(rows))
        if sizes.gate is not None and len(sizes) == 1:
            await sizes.gate.wait()  # the first statement stays in flight until told
        return await real(connection, alias, decision, rows)

    monkeypatch.setattr(audit_services, "arecord_validations", counted)
    return sizes


class Batches(list):
    gate: asyncio.Event | None = None


def audit_row(request_id: str) -> dict:
    """The audit row of one request, without what differs between two equal requests."""
    return comparable_audit(AuditLog.objects.get(request_id=request_id))


def at_once(loop, app, bodies: list[dict], request_ids: list[str]) -> list:
    """The requests sent together: all arrive before the first answer is written."""

    async def send_all():
        return await asyncio.gather(
            *(
                request(app, body, headers=[("x-request-id", rid)])
                for body, rid in zip(bodies, request_ids, strict=True)
            )
        )

    return loop.run_until_complete(send_all())


def test_validations_arriving_together_share_one_statement_each_with_its_own_answer(
    loop, fast, django_app, make_license, batches
):
    valid = make_license(license_type="subscription", duration_days=30)
    revoked = make_license()
    license_revoke(actor=ACTOR, license_id=revoked.pk, reason="chargeback")
    gone = make_license()
    License.objects.filter(pk=gone.pk).delete()
    suspended_customer = customer_create(
        actor=ACTOR, id="CUST-OFF", name="Off", email="off@example.com"
    )
    suspended = make_license(customer_id=suspended_customer.id)
    Customer.objects.filter(pk=suspended_customer.pk).update(is_active=False)
    bodies = [
        body_for(valid),
        body_for(revoked),
        body_for(gone),
        body_for(suspended),
        body_for(valid, module_name="other_module"),
        body_for(valid, odoo_version="12.0"),
        body_for(valid, token="not-a-token"),
        body_for(valid, token=valid.token[:-4] + "AAAA"),
        body_for(valid),
    ]
    expected = []
    for i, body in enumerate(bodies):
        answer = call(loop, django_app, body, headers=[("x-request-id", f"django-{i}")])
        expected.append((answer[0], answer[2], audit_row(f"django-{i}")))
    call(loop, fast, body_for(valid))  # teaches the headers (Django answers it)
    call(loop, fast, body_for(valid))  # opens the pool
    batches.clear()
    calls = django_app.calls

    answers = at_once(loop, fast, bodies, [f"fast-{i}" for i in range(len(bodies))])

    assert batches == [len(bodies)]  # one statement for all of them
    assert django_app.calls == calls
    codes = [json.loads(content)["code"] for _, _, content in answers]
    assert codes == [
        "VALID",
        "REVOKED",
        "UNKNOWN_LICENSE",
        "SUSPENDED",
        "MODULE_MISMATCH",
        "VERSION_NOT_ALLOWED",
        "MALFORMED",
        "BAD_SIGNATURE",
        "VALID",
    ]
    for i, (status, _headers, content) in enumerate(answers):
        assert (status, content, audit_row(f"fast-{i}")) == expected[i], bodies[i]


def test_validations_arriving_while_the_pool_is_busy_wait_for_the_next_batch(
    loop, fast, make_license, batches, settings
):
    """With every connection in use, new validations do not each start a statement of
    their own: they wait, and the next statement finishes them all."""
    settings.VALIDATE_DB_POOL_SIZE = 1
    license = make_license()
    call(loop, fast, body_for(license))
    call(loop, fast, body_for(license))
    batches.clear()
    batches.gate = asyncio.Event()

    async def scenario():
        first = [asyncio.ensure_future(request(fast, body_for(license))) for _ in range(2)]
        while not batches:  # the first statement is in flight
            await asyncio.sleep(0)
        later = []
        for _ in range(4):  # one after the other, each reaching its wait before the next
            later.append(asyncio.ensure_future(request(fast, body_for(license))))
            for _ in range(10):
                await asyncio.sleep(0)
        batches.gate.set()
        return await asyncio.gather(*first, *later)

    answers = loop.run_until_complete(scenario())
    assert batches == [2, 4]
    assert [json.loads(content)["code"] for *_, content in answers] == ["VALID"] * 6


def test_a_batch_the_database_refuses_is_answered_by_django_for_each_request(
    loop, fast, make_license, batches, service_runs
):
    license = make_license()
    call(loop, fast, body_for(license))
    call(loop, fast, body_for(license))
    batches.clear()
    service_runs.clear()
    rows = AuditLog.objects.count()
    with audit_inserts_refused("fail_audit_batch"):
        answers = at_once(loop, fast, [body_for(license)] * 5, [f"r{i}" for i in range(5)])
    assert batches == [5]
    assert [status for status, *_ in answers] == [503] * 5
    assert {json.loads(content)["code"] for *_, content in answers} == {"service_unavailable"}
    assert len(service_runs) == 5  # each tried once more by the action, which failed too
    assert AuditLog.objects.count() == rows
    # The next validation is answered on the event loop again.
    assert json.loads(call(loop, fast, body_for(license))[2])["code"] == "VALID"


def test_a_connection_the_server_closed_is_replaced_not_used(loop, fast, make_license):
    license = make_license()
    call(loop, fast, body_for(license))
    assert call(loop, fast, body_for(license))[0] == 200
    with connection.cursor() as cursor:  # the server ends the pool's idle connections
        cursor.execute(
            "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity "
            "WHERE application_name = '' AND pid <> pg_backend_pid() "
            "AND datname = current_database()"
        )
        assert cursor.fetchone() is not None
    status, _, content = call(loop, fast, body_for(license))
    assert status == 200 and json.loads(content)["code"] == "VALID"


def test_one_access_line_per_request(loop, fast, make_license, caplog):
    license = make_license()
    access = logging.getLogger("gunicorn.access")
    handler = logging.NullHandler()
    access.addHandler(handler)  # AccessLog writes when gunicorn's access log is on
    try:
        with caplog.at_level(logging.INFO, logger="gunicorn.access"):
            status, headers, content = call(loop, AccessLog(fast), body_for(license))
    finally:
        access.removeHandler(handler)
    (record,) = [r for r in caplog.records if r.name == "gunicorn.access"]
    assert record.getMessage() == "access"
    assert (record.method, record.path, record.status) == ("POST", URL, status)
    assert record.bytes == len(content) and record.request_id == headers["X-Request-ID"]
    assert record.remote_ip == "10.1.2.3"


def test_lifespan_closes_the_pool(loop, fast, make_license):
    license = make_license()
    call(loop, fast, body_for(license))
    call(loop, fast, body_for(license))
    assert fast.database.pool is not None
    assert lifespan(loop, fast) == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    assert fast.database.pool is None


def lifespan(loop, app) -> list[str]:
    """A worker's start and stop, as uvicorn tells the application; what it answered."""
    messages = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]
    sent = []

    async def receive():
        return messages.pop(0)

    async def send(message):
        sent.append(message["type"])

    loop.run_until_complete(app({"type": "lifespan"}, receive, send))
    return sent


@pytest.fixture
def redis_counts(settings, monkeypatch) -> list[int]:
    """The production cache (Redis on 127.0.0.1:6379, a database of its own, a fresh key
    prefix) and the number of keys counted by each round trip the transport makes."""
    prefix = f"aegis-test-{uuid.uuid4().hex[:8]}"
    settings.CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": "redis://127.0.0.1:6379/13",
            "KEY_PREFIX": prefix,
            "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 1, "SOCKET_TIMEOUT": 1},
        }
    }
    settings.RATE_LIMIT_ENABLED = True
    round_trips = []
    real = ratelimit.hit_many

    async def counted(client, keys):
        round_trips.append(len(keys))
        return await real(client, keys)

    monkeypatch.setattr(ratelimit, "hit_many", counted)
    yield round_trips
    cache.delete_pattern("*")


def test_throttle_counts_of_validations_arriving_together_share_one_round_trip(
    loop, fast, django_app, make_license, redis_counts, settings
):
    settings.THROTTLE_RATE_PUBLIC = "4/min"
    license = make_license()
    call(loop, fast, body_for(license))  # Django answers it (teaches the headers): 1 counted
    calls = django_app.calls

    answers = at_once(loop, fast, [body_for(license)] * 5, [f"t{i}" for i in range(5)])

    assert redis_counts == [5]  # five counts, one round trip, from the event loop
    assert [status for status, *_ in answers] == [200, 200, 200, 429, 429]
    assert "Retry-After" in answers[3][1]
    assert django_app.calls == calls + 2  # the refused ones, answered by the action
    # The keys Django's throttle reads: the transport counted where it counts.
    assert ratelimit.count("ip:10.1.2.3", 60)[0] >= 6
    # The worker stopping closes the loop's Redis client with the pool.
    assert loop in ratelimit._async_clients
    lifespan(loop, fast)
    assert loop not in ratelimit._async_clients


def test_a_cache_outage_is_answered_by_django_with_503(loop, fast, make_license):
    license = make_license()
    call(loop, fast, body_for(license))
    learned = copy.deepcopy(fast.headers)
    with cache_unreachable_now():
        fast.headers = learned  # ready, as a worker is when its cache goes away
        status, headers, content = call(loop, fast, body_for(license))
    assert status == 503 and headers["Content-Type"] == "application/json"
    assert json.loads(content)["code"] == "service_unavailable"


def test_request_tasks_share_the_default_cache(tmp_path):
    """Every request task of a worker uses the cache object (and Redis client) built once:
    looked up first inside a task, Django's per-context handler built one per request."""
    code = (
        "import asyncio\n"
        "import aegis.asgi\n"
        "from django.core.cache import caches\n"
        "seen = []\n"
        "async def request():\n"
        "    seen.append(caches['default'])\n"
        "async def main():\n"
        "    for _ in range(20):\n"
        "        await asyncio.create_task(request())\n"
        "asyncio.run(main())\n"
        "print(len({id(cache) for cache in seen}))\n"
    )
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DATABASE", "DJANGO", "CACHE"))
    }
    env |= {"KEYS_DIR": str(tmp_path), "ENVIRONMENT": "development"}
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "1"
