"""Failed staff logins are limited per client address (aegis/admin_site.py)."""

from __future__ import annotations

import pytest
from django.core.cache import cache
from django.test import Client

from tests.conftest import cache_unreachable_now

URL = "/admin/login/?next=/admin/"
pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh_counters():
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def staff(django_user_model):
    return django_user_model.objects.create_user(
        "alice", password="correct horse battery", is_staff=True
    )


def attempt(password: str, address: str = "10.9.8.7"):
    client = Client(REMOTE_ADDR=address)
    return client.post(URL, {"username": "alice", "password": password})


def test_an_address_over_the_limit_is_refused_even_with_the_right_password(staff, settings):
    settings.THROTTLE_RATE_FAILED_LOGIN = "3/min"
    for _ in range(3):
        assert attempt("wrong").status_code == 200  # the form again, with its error
    refused = attempt("correct horse battery")
    assert refused.status_code == 429
    assert 1 <= int(refused["Retry-After"]) <= 60
    assert b"Too many failed sign-in attempts" in refused.content
    assert "_auth_user_id" not in refused.wsgi_request.session


def test_other_addresses_and_successes_are_not_counted(staff, settings):
    settings.THROTTLE_RATE_FAILED_LOGIN = "2/min"
    for _ in range(5):
        assert attempt("correct horse battery").status_code == 302  # signed in
    attempt("wrong")
    attempt("wrong")
    assert attempt("correct horse battery").status_code == 429
    assert attempt("correct horse battery", address="10.9.8.6").status_code == 302


def test_without_rate_limits_nothing_is_refused(staff, settings):
    settings.THROTTLE_RATE_FAILED_LOGIN = "1/min"
    settings.RATE_LIMIT_ENABLED = False
    for _ in range(3):
        assert attempt("wrong").status_code == 200
    assert attempt("correct horse battery").status_code == 302


def test_a_cache_outage_refuses_sign_in_with_503(staff):
    with cache_unreachable_now():
        refused = attempt("correct horse battery")
    assert refused.status_code == 503 and "Retry-After" in refused
    assert b"Sign-in is unavailable" in refused.content
