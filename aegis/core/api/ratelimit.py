"""Fixed-window counters in Django's default cache (`CACHE_URL`: Redis in production, shared
by every worker and instance), used by the request throttles and by the failed-API-key
guard.

On Redis a counted event is one round trip: `SET key 0 EX period+1 NX` and `INCR key` sent
together (a pipeline). Through Django's cache API it was two, `add` then `incr` (itself a
Lua script sent in full each time): measured, the rate limit was then a large share of a
validation's CPU (docs/performance.md). The key cannot expire between the two
commands: it names its window and lives one second past the window's end. Other caches
(local memory in development) use `add` and `incr`.

The validate transport on the event loop (licensing/validate_asgi.py) counts the
validations waiting together in one round trip with an asynchronous client (`hit_many`, the
same keys): a synchronous call there held the whole worker for each round trip; counted
together, validations go as fast with rate limits on as with them off (docs/performance.md)."""

from __future__ import annotations

import asyncio
import functools
import math
import time
import weakref

from django.conf import settings
from django.core.cache import cache, caches
from django.core.exceptions import ImproperlyConfigured

_PERIODS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


@functools.cache
def parse_rate(rate: str) -> tuple[int, int]:
    """`"600/min"` → (600, 60). Periods: s[econd], m[in[ute]], h[our], d[ay]."""
    try:
        count, _, period = rate.partition("/")
        return int(count), _PERIODS[period.strip()[:1].lower()]
    except (KeyError, ValueError):
        raise ImproperlyConfigured(
            f"Invalid throttle rate {rate!r}: use <count>/<second|minute|hour|day>, e.g. 600/min"
        ) from None


def _window(name: str, period: int) -> tuple[str, float]:
    """The cache key of the current window of `name`, and the seconds until it ends."""
    now = time.time()
    window = int(now // period)
    return f"throttle:{name}:{period}:{window}", (window + 1) * period - now


def _redis():
    """The Redis client behind the default cache, or None for another backend."""
    try:
        from django_redis import get_redis_connection
        from django_redis.cache import RedisCache
    except ImportError:  # pragma: no cover - a runtime dependency
        return None
    return get_redis_connection("default") if isinstance(caches["default"], RedisCache) else None


def hit(name: str, period: int) -> tuple[int, float]:
    """Count one event for `name` in the current window; return (events counted in this
    window, seconds until it ends)."""
    key, remaining = _window(name, period)
    client = _redis()
    if client is not None:
        stored = cache.make_key(key)  # the name `cache.get` reads (prefix, version)
        pipe = client.pipeline(transaction=False)
        pipe.set(stored, 0, ex=period + 1, nx=True)
        pipe.incr(stored)
        return int(pipe.execute()[1]), remaining
    cache.add(key, 0, timeout=period + 1)
    try:
        count = cache.incr(key)
    except ValueError:  # the counter expired between add() and incr()
        cache.add(key, 1, timeout=period + 1)
        count = 1
    return count, remaining


def stored_key(name: str, period: int) -> str:
    """The Redis key `hit` counts `name` under in the current window."""
    return cache.make_key(_window(name, period)[0])


# One asynchronous client per event loop (a client's connections belong to the loop that
# opened them), for the cache settings it was made with.
_async_clients: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def async_client():
    """A redis.asyncio client for the default cache's Redis on the running event loop, or
    None when the default cache is not Redis. Same server and timeouts as the cache."""
    config = settings.CACHES["default"]
    if config.get("BACKEND") != "django_redis.cache.RedisCache":
        return None
    location = config["LOCATION"]
    if not isinstance(location, str):  # several servers: the first one takes the writes
        location = location[0]
    location = location.split(",")[0]
    options = config.get("OPTIONS", {})
    made_with = (location, options.get("SOCKET_TIMEOUT"), options.get("SOCKET_CONNECT_TIMEOUT"))
    loop = asyncio.get_running_loop()
    known = _async_clients.get(loop)
    if known is None or known[0] != made_with:
        from redis.asyncio import Redis

        client = Redis.from_url(
            location, socket_timeout=made_with[1], socket_connect_timeout=made_with[2]
        )
        known = _async_clients[loop] = (made_with, client)
    return known[1]


async def close_async_client() -> None:
    """Close the running loop's client, if it made one (the worker is stopping)."""
    known = _async_clients.pop(asyncio.get_running_loop(), None)
    if known is not None:
        await known[1].aclose()


async def hit_many(client, keys: list[tuple[str, int]]) -> list[int]:
    """`hit` for many events at once, from the event loop: one round trip for all. `keys`
    are (stored_key, period) pairs; returns the count of each, in order. A key met twice is
    counted twice (each event gets its own count)."""
    pipe = client.pipeline(transaction=False)
    for stored, period in keys:
        pipe.set(stored, 0, ex=period + 1, nx=True)
        pipe.incr(stored)
    replies = await pipe.execute()
    return [int(reply) for reply in replies[1::2]]


def count(name: str, period: int) -> tuple[int, float]:
    """(events counted for `name` in the current window, seconds until it ends); counts
    nothing."""
    key, remaining = _window(name, period)
    return int(cache.get(key) or 0), remaining


def retry_after(remaining: float) -> int:
    """Whole seconds for `Retry-After`: at least one, never 0."""
    return max(1, math.ceil(remaining))
