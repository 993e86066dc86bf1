"""One decider: every validation code (NOT_ACTIVATED and a VALID that needs a seat among
them), on every path, gives the DRF action's answer and exactly one audit row, and a
revocation answers REVOKED on the very next request.

The paths: Django's stack and the DRF action (PostgreSQL, one statement per validation), the
event-loop transport (PostgreSQL, validations waiting together in one statement), each with
the verified-token cache off and warm, and the DRF action on SQLite (the zero-setup default,
in a process of its own). The cases are tests/licensing/validation_cases.py.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from audit.models import AuditLog
from licensing import validation
from tests.licensing import validation_cases
from tests.licensing.validation_cases import CODES, UNLOOKED
from tests.ops.servers import ROOT, base_env
from tests.perf.conftest import comparable_audit
from tests.perf.test_validate_asgi import at_once, call, django_app, fast, loop  # noqa: F401

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def row(request_id: str) -> dict:
    return comparable_audit(AuditLog.objects.get(request_id=request_id))


@pytest.fixture(params=["off", "warm"])
def token_cache(request):
    """The verified-token cache off (every token verified in full), or on: Django's pass
    fills it, the event loop's pass is answered from it."""
    tokens = validation.verified_tokens
    size = tokens.maxsize
    tokens.clear()
    tokens.maxsize = 0 if request.param == "off" else size
    yield request.param
    tokens.maxsize = size
    tokens.clear()


def test_every_code_gives_the_actions_answer_on_every_path(loop, fast, django_app, token_cache):  # noqa: F811
    cases = validation_cases.build_cases()
    bodies = [body for _, body in cases]
    expected = []
    for i, body in enumerate(bodies):  # Django's stack and the DRF action, one at a time
        status, _headers, content = call(
            loop, django_app, body, headers=[("x-request-id", f"d{i}")]
        )
        expected.append((status, content, row(f"d{i}")))
    assert [json.loads(content)["code"] for _, content, _ in expected] == CODES
    assert AuditLog.objects.filter(request_id__startswith="d").count() == len(CODES)
    call(loop, fast, bodies[-1])  # Django answers it: the transport learns its headers
    hits, calls = validation.verified_tokens.hits, django_app.calls

    answers = at_once(loop, fast, bodies, [f"loop-{i}" for i in range(len(bodies))])

    assert django_app.calls == calls  # every one answered on the event loop, in one batch
    for i, (status, _headers, content) in enumerate(answers):
        assert (status, content, row(f"loop-{i}")) == expected[i], CODES[i]
    assert AuditLog.objects.filter(request_id__startswith="loop-").count() == len(CODES)
    # Kept: the tokens whose signature and issuer verified (every code from EXPIRED on).
    kept = sum(code not in UNLOOKED - {"EXPIRED"} for code in CODES)
    assert validation.verified_tokens.hits - hits == (kept if token_cache == "warm" else 0)


def test_a_revocation_answers_on_the_very_next_request_on_every_path(
    loop,  # noqa: F811
    fast,  # noqa: F811
    django_app,  # noqa: F811
    token_cache,
):
    cases = validation_cases.build_cases()
    valid = cases[CODES.index("VALID")][1]
    assert json.loads(call(loop, django_app, valid)[2])["code"] == "VALID"
    call(loop, fast, valid)  # teaches the transport its headers
    calls = django_app.calls
    assert json.loads(call(loop, fast, valid)[2])["code"] == "VALID"
    assert django_app.calls == calls  # answered on the event loop

    validation_cases.revoke_all(valid["token"])

    assert json.loads(call(loop, fast, valid)[2])["code"] == "REVOKED"
    assert django_app.calls == calls
    assert json.loads(call(loop, django_app, valid)[2])["code"] == "REVOKED"


SQLITE_RUN = textwrap.dedent(
    """
    import json
    import django
    django.setup()
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client
    from django.test.utils import setup_test_environment
    from audit.models import AuditLog
    from licensing import signing
    from tests.licensing import validation_cases
    setup_test_environment()
    call_command("migrate", verbosity=0)
    signing.write_keypair(settings.KEYS_DIR, settings.KEY_ID)
    signing.reset()
    cases = validation_cases.build_cases()
    valid = cases[validation_cases.CODES.index("VALID")]
    answers = []
    for i, (_, body) in enumerate([*cases, valid]):
        if i == len(cases):
            validation_cases.revoke_all(body["token"])
        before = AuditLog.objects.count()
        response = Client().post("/api/v1/licenses/validate", body, content_type="application/json")
        last = AuditLog.objects.latest("id")
        answers.append({
            "status": response.status_code,
            "answer": response.json(),
            "rows": AuditLog.objects.count() - before,
            "audited": last.event_data["code"],
            "license_id": str(last.license_id) if last.license_id else None,
        })
    print(json.dumps({"vendor": connection.vendor, "answers": answers}))
    """
)


@pytest.mark.django_db(transaction=False)
def test_every_code_on_sqlite(tmp_path):
    """`make run`'s database: the same codes from the same rules, one audit row each with
    its code and license, and a revocation seen by the very next request."""
    env = base_env(
        DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}",
        KEYS_DIR=str(tmp_path),
        KEY_ID="aegis-sqlite",
        ENVIRONMENT="development",
        RATE_LIMIT_ENABLED="false",
        DJANGO_SETTINGS_MODULE="aegis.settings",
    )
    env.pop("CACHE_URL", None)
    done = subprocess.run(
        [sys.executable, "-c", SQLITE_RUN],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["vendor"] == "sqlite"
    codes = [*CODES, "REVOKED"]
    assert [a["answer"]["code"] for a in result["answers"]] == codes
    for answer, code in zip(result["answers"], codes, strict=True):
        assert (answer["status"], answer["rows"], answer["audited"]) == (200, 1, code)
        assert answer["answer"]["valid"] is (code == "VALID")
        known = code not in UNLOOKED | {"UNKNOWN_LICENSE"}
        assert answer["license_id"] == (answer["answer"]["license_id"] if known else None)
