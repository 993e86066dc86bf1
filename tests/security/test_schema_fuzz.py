"""Schema fuzzing: Schemathesis drives every operation of our own OpenAPI schema, in-process
(WSGI), with an admin key, on the real database, with data that fits the schema and data
that does not. Zero failures of these checks:

- `not_a_server_error`: no 5xx, whatever is sent;
- `status_code_conformance`: every status is one the schema documents;
- `content_type_conformance`, `response_schema_conformance`: the body is what the schema says;
- `negative_data_rejection`: data that breaks the schema is refused with a 4xx.

Bounded for CI: `FUZZ_MAX_EXAMPLES` examples per operation and phase (default 25), no
deadline. A seeded customer and license give the generator real ids to find.
"""

from __future__ import annotations

import os

import pytest
import schemathesis
from django.core.handlers.wsgi import WSGIHandler
from hypothesis import HealthCheck, settings
from schemathesis import checks
from schemathesis.config import SchemathesisConfig

from aegis.core.api.scopes import Scope
from aegis.services import api_key_create

pytestmark = pytest.mark.django_db(transaction=True)

MAX_EXAMPLES = int(os.environ.get("FUZZ_MAX_EXAMPLES", "25"))
REJECTIONS = [
    "400",
    "401",
    "403",
    "404",
    "405",
    "406",
    "409",
    "411",
    "413",
    "415",
    "422",
    "428",
    "429",
    "5xx",
]
CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
    checks.negative_data_rejection,
]


@pytest.fixture(autouse=True)
def _no_throttles(settings):
    # Throttling answers 429 (documented) once the examples outrun the rate; off here so
    # every example reaches the code under test. Limits have their own tests.
    settings.RATE_LIMIT_ENABLED = False


@pytest.fixture
def admin_key(make_license):
    make_license()  # a customer CUST-001 and a license to find
    _, raw = api_key_create(actor="user:fuzz", name="fuzz", scope=Scope.ADMIN)
    return raw


def load_schema():
    """Our schema, read through the application itself (as a client would)."""
    config = SchemathesisConfig.from_dict(
        {
            "generation": {"max-examples": MAX_EXAMPLES},
            # Schemathesis' default list of rejections, plus our two documented refusals of
            # a body before it is read: 411 (chunked) and 413 (over 64 KiB).
            "checks": {"negative_data_rejection": {"expected-statuses": REJECTIONS}},
        }
    )
    return schemathesis.openapi.from_wsgi("/api/schema/", WSGIHandler(), config=config)


schema = load_schema()


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_every_operation_conforms(case, admin_key):
    case.call_and_validate(headers={"X-API-Key": admin_key}, checks=CHECKS)


# --- What the fuzzer found, pinned -----------------------------------------------------------
# Each of these failed one of the checks above before it was fixed; they run on every
# database, with no generation, so a regression is named precisely.


@pytest.fixture
def admin_client(admin_key):
    from tests.api.conftest import client_with

    return client_with(admin_key)


@pytest.mark.parametrize(
    "query",
    [
        "/api/v1/licenses?ordering=,,,",
        "/api/v1/licenses?ordering=issued_at,",
        "/api/v1/licenses?ordering=",
        "/api/v1/licenses?status=",
        "/api/v1/licenses?license_type=",
        "/api/v1/licenses?expires_before=",
        "/api/v1/customers?is_active=",
        "/api/v1/admin/audit-logs?until=",
        "/api/v1/admin/audit-logs?license_id=",
        "/api/v1/admin/audit-logs?since=0001-01-01T00:00:00%2B05:00",
        "/api/v1/licenses?expires_after=9999-12-31T23:59:59-05:00",
        "/api/v1/licenses/revocations?module=",
        "/api/v1/licenses/revocations?module=biz4a_payroll_drc%0A",
        "/api/v1/licenses?stauts=revoked",  # a misspelt filter would list every license
        "/api/v1/customers?errors=ordering",
        "/api/v1/admin/audit-logs?page=2",  # the trail pages by cursor
    ],
)
def test_blank_or_impossible_query_values_are_400(admin_client, query):
    from tests.api.conftest import assert_error

    assert_error(admin_client.get(query), 400, "validation_error")


@pytest.mark.parametrize(
    "query",
    [
        # PostgreSQL refuses UTC offsets beyond ±15:59; ISO 8601 allows ±23:59.
        "/api/v1/admin/audit-logs?until=0256-03-15T02:45:39-16:25",
        "/api/v1/admin/audit-logs?since=0012-01-14T10:33:01%2B18:09",
        "/api/v1/licenses?expires_before=2030-01-01T00:00:00%2B23:59",
        "/api/v1/licenses?search=&module_name=",  # text filters may be blank
        "/api/v1/licenses?page=1&page_size=5&format=json",
        "/api/v1/admin/audit-logs?page_size=5&cursor=",
    ],
)
def test_odd_but_valid_query_values_are_answered(admin_client, query):
    assert admin_client.get(query).status_code == 200


def test_length_limits_count_what_was_sent_not_what_is_left_after_trimming(admin_client):
    from tests.api.conftest import assert_error

    padded = " " * 10 + "x" * 250 + " " * 10  # 270 sent, 250 after trimming; the limit is 255
    body = {"id": "CUST-PAD", "name": padded, "email": "p@x.example"}
    response = admin_client.post("/api/v1/customers", body, format="json")
    assert "name" in assert_error(response, 400, "validation_error")["errors"]
    validate = {"token": "a.b.c", "module_name": "m", "odoo_version": " " * 20 + "17.0" + " " * 20}
    response = admin_client.post("/api/v1/licenses/validate", validate, format="json")
    assert "odoo_version" in assert_error(response, 400, "validation_error")["errors"]


def test_the_schema_declares_what_the_server_answers(admin_client):
    document = admin_client.get("/api/schema/", HTTP_ACCEPT="application/json").json()
    is_active = next(
        p
        for p in document["paths"]["/api/v1/customers"]["get"]["parameters"]
        if p["name"] == "is_active"
    )
    assert is_active["schema"] == {"type": "boolean"}
    revocations = document["paths"]["/api/v1/licenses/revocations"]["get"]["responses"]
    assert {"200", "304", "400", "429", "503"} <= set(revocations)
    assert {"200", "304", "429"} <= set(
        document["paths"]["/.well-known/jwks.json"]["get"]["responses"]
    )


@pytest.mark.parametrize("value", ["abc\n", "abc\r\nX-Injected: 1", "a" * 65, "é"])
def test_a_request_id_that_is_not_plain_is_replaced(admin_client, value):
    response = admin_client.get("/health", HTTP_X_REQUEST_ID=value)
    assert response["X-Request-ID"] != value and len(response["X-Request-ID"]) == 32
