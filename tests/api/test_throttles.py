"""Rate limits: per client IP on public routes, per key elsewhere; 429 with Retry-After."""

from __future__ import annotations

import pytest

from aegis.core.api.throttles import parse_rate
from tests.api.conftest import assert_error, client_with

pytestmark = pytest.mark.django_db
FINGERPRINT = "/api/v1/licenses/fingerprint"
BODY = {"db_uuid": "abc", "domain": "erp.example.com"}


def test_public_routes_are_limited_per_client_ip(anon, settings):
    settings.THROTTLE_RATE_PUBLIC = "2/min"
    assert anon.post(FINGERPRINT, BODY).status_code == 200
    assert anon.post(FINGERPRINT, BODY).status_code == 200
    response = anon.post(FINGERPRINT, BODY)
    assert_error(response, 429, "throttled")
    assert 1 <= int(response["Retry-After"]) <= 60
    # Another address has its own budget; X-Forwarded-For is not believed.
    assert anon.post(FINGERPRINT, BODY, REMOTE_ADDR="10.0.0.2").status_code == 200
    assert_error(anon.post(FINGERPRINT, BODY, HTTP_X_FORWARDED_FOR="10.0.0.3"), 429, "throttled")


def test_keys_are_limited_per_key_not_per_ip(make_key, settings):
    settings.THROTTLE_RATE_API_KEY = "2/min"
    first, second = (
        client_with(make_key("readonly", "one")),
        client_with(make_key("readonly", "two")),
    )
    assert first.get("/api/v1/licenses").status_code == 200
    assert first.get("/api/v1/licenses").status_code == 200
    assert_error(first.get("/api/v1/licenses"), 429, "throttled")
    assert second.get("/api/v1/licenses").status_code == 200


def test_the_public_budget_is_separate_from_a_keys(anon, make_key, settings):
    settings.THROTTLE_RATE_PUBLIC = "1/min"
    assert anon.get("/info").status_code == 200
    assert_error(anon.get("/info"), 429, "throttled")
    assert client_with(make_key("readonly")).get("/api/v1/licenses").status_code == 200


def test_rate_limit_can_be_disabled(anon, settings):
    settings.THROTTLE_RATE_PUBLIC = "1/min"
    settings.RATE_LIMIT_ENABLED = False
    for _ in range(5):
        assert anon.post(FINGERPRINT, BODY).status_code == 200


@pytest.mark.parametrize(
    ("rate", "parsed"),
    [("600/min", (600, 60)), ("10/s", (10, 1)), ("5/hour", (5, 3600)), ("1/day", (1, 86400))],
)
def test_parse_rate(rate, parsed):
    assert parse_rate(rate) == parsed


def test_a_bad_rate_is_a_configuration_error():
    from django.core.exceptions import ImproperlyConfigured

    with pytest.raises(ImproperlyConfigured):
        parse_rate("lots")
