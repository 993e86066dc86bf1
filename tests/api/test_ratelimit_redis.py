"""The rate-limit counters on Redis, the production cache (aegis/core/api/ratelimit.py): one
pipelined round trip per counted event, read back by the cache API, expiring with their
window. Against the Redis server this machine and CI run on 127.0.0.1:6379."""

from __future__ import annotations

import uuid

import pytest
from django.core.cache import cache
from django.test import override_settings
from django_redis import get_redis_connection

from aegis.core.api import ratelimit
from tests.api.conftest import assert_error

pytestmark = pytest.mark.django_db


@pytest.fixture
def redis_cache():
    prefix = f"aegis-test-{uuid.uuid4().hex[:8]}"
    caches = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": "redis://127.0.0.1:6379/13",
            "KEY_PREFIX": prefix,
            "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 1, "SOCKET_TIMEOUT": 1},
        }
    }
    with override_settings(CACHES=caches):
        yield get_redis_connection("default")
        cache.delete_pattern("*")


def test_a_hit_is_one_round_trip_and_counts(redis_cache):
    commands = []
    original = redis_cache.pipeline

    def recording_pipeline(*args, **kwargs):
        pipe = original(*args, **kwargs)
        execute = pipe.execute

        def counted_execute(*a, **k):
            commands.append([c[0][0] for c in pipe.command_stack])
            return execute(*a, **k)

        pipe.execute = counted_execute
        return pipe

    redis_cache.pipeline = recording_pipeline
    try:
        assert ratelimit.hit("ip:10.0.0.1", 60)[0] == 1
        assert ratelimit.hit("ip:10.0.0.1", 60)[0] == 2
    finally:
        del redis_cache.pipeline
    assert commands == [["SET", "INCRBY"], ["SET", "INCRBY"]]  # one round trip each
    assert ratelimit.count("ip:10.0.0.1", 60)[0] == 2  # what the cache API reads back
    assert ratelimit.count("ip:10.0.0.2", 60)[0] == 0


def test_a_counter_expires_a_second_after_its_window(redis_cache):
    _count, remaining = ratelimit.hit("key:abc", 60)
    key = cache.make_key(ratelimit._window("key:abc", 60)[0])
    assert 0 < redis_cache.ttl(key) <= 61 and remaining <= 60


def test_the_public_throttle_holds_on_redis(redis_cache, anon, make_license, settings):
    settings.THROTTLE_RATE_PUBLIC = "3/min"
    license = make_license()
    body = {"token": license.token, "module_name": "biz4a_payroll_drc", "odoo_version": "17"}
    url = "/api/v1/licenses/validate"
    answers = [anon.post(url, body, format="json").status_code for _ in range(3)]
    assert answers == [200, 200, 200]
    assert_error(anon.post(url, body, format="json"), 429, "throttled")
