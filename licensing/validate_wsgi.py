"""`POST /api/v1/licenses/validate` answered in front of Django's request handling.

The validate route is the hot path: every Odoo instance calls it, thousands of times per
second across a fleet. Measured on 2 cores, Django's request handling around the lean view
(licensing/validate_view.py) — request object, signals, middleware, URL resolution, response
object — cost as much CPU as the validation itself. `ValidateFastPath` wraps the WSGI
application and answers the common request without it:

- only `POST` to the exact path, `Content-Type: application/json`, an Accept the action
  answers with JSON, no query string, no `Origin` (CORS is the middleware's), an allowed
  Host, HTTPS when `SECURE_SSL_REDIRECT` wants it, a body within the API limit that the
  action's serializer would accept as is (`validate_view.clean`), and a client within its
  throttle. Anything else goes to Django, untouched: every refusal keeps its one
  implementation.
- the answer is byte for byte the action's: the same service (`license_validate`, which
  writes the audit row), the same renderer, and the headers Django's middleware put on the
  last such answer it gave itself. The first request of a process (per scheme, and after a
  settings change) therefore goes through Django, and the fast path copies that response's
  headers except the per-request ones (X-Request-ID, Content-Length). A header added by a
  new middleware appears here too; tests/perf/test_validate_wsgi.py compares both answers.
- what Django and its middleware do per request is done here too: the request id (an
  incoming plain `X-Request-ID` is kept) and client address for the audit row, the
  `request_started` / `request_finished` signals (connection age and health checks), and
  the request counters of django-prometheus for the route.
- an exception (the database is down) is not answered here: the request goes to Django with
  the exception attached, and the lean view raises it there, so the API boundary answers
  503 as on any other route, and the service is not run twice.

`VALIDATE_FAST_PATH=false` turns it off (every request then goes through Django).
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable, Iterable

from django.conf import settings
from django.core.signals import request_finished, request_started, setting_changed
from django.http.request import split_domain_port, validate_host

from aegis import context
from aegis.middleware import request_id as make_request_id
from licensing import validate_view
from licensing.api import outcome_body
from licensing.validation import license_validate

PATH = "/api/v1/licenses/validate"
VIEW_NAME = "license-validate"
# Set on a request handed to Django after the service raised: the lean view raises it again.
FAILED = validate_view.FAILED
# Headers of a response that belong to that response alone.
_PER_RESPONSE = frozenset({"x-request-id", "content-length", "date", "set-cookie"})

StartResponse = Callable[..., object]


def is_secure(environ: dict) -> bool:
    """Django's HttpRequest.is_secure() for a WSGI environ."""
    header = settings.SECURE_PROXY_SSL_HEADER
    if header:
        name, secure_value = header
        value = environ.get(name)
        if value is not None:
            return value.split(",", 1)[0].strip() == secure_value
    return environ.get("wsgi.url_scheme") == "https"


def _host_allowed(environ: dict) -> bool:
    """The Host Django's get_host() would accept (forwarded hosts are left to Django)."""
    if settings.USE_X_FORWARDED_HOST and "HTTP_X_FORWARDED_HOST" in environ:
        return False
    host = environ.get("HTTP_HOST")
    if not host:
        return False
    allowed = settings.ALLOWED_HOSTS
    if settings.DEBUG and not allowed:
        allowed = [".localhost", "127.0.0.1", "[::1]"]
    domain, _port = split_domain_port(host)
    return bool(domain) and validate_host(domain, allowed)


def _content_length(environ: dict) -> int:
    raw = environ.get("CONTENT_LENGTH") or ""
    if not (raw.isascii() and raw.isdigit()):
        return 0
    length = int(raw)
    return length if length <= settings.API_MAX_BODY_BYTES else 0


def eligible(environ: dict) -> bool:
    return (
        environ.get("PATH_INFO") == PATH
        and environ.get("REQUEST_METHOD") == "POST"
        and environ.get("CONTENT_TYPE") == "application/json"
        and environ.get("HTTP_ACCEPT", "") in validate_view.ACCEPTS
        and not environ.get("QUERY_STRING")
        and "HTTP_ORIGIN" not in environ
        and "HTTP_TRANSFER_ENCODING" not in environ
        and _content_length(environ) > 0
        and _host_allowed(environ)
        and (is_secure(environ) or not settings.SECURE_SSL_REDIRECT)
    )


class RouteMetrics:
    """django-prometheus's request counters for this route, as its middleware counts them."""

    def __init__(self) -> None:
        from django_prometheus.middleware import Metrics

        metrics = Metrics.get_instance()
        self.requests = metrics.requests_total
        self.latency_before = metrics.requests_latency_before
        self.by_transport = metrics.requests_by_transport.labels("http")
        self.by_method = metrics.requests_by_method.labels("POST")
        self.by_view = metrics.requests_by_view_transport_method.labels(VIEW_NAME, "http", "POST")
        self.latency = metrics.requests_latency_by_view_method.labels(view=VIEW_NAME, method="POST")
        self.responses = metrics.responses_total
        self.by_status = metrics.responses_by_status.labels("200")
        self.by_status_view = metrics.responses_by_status_view_method.labels(
            "200", VIEW_NAME, "POST"
        )

    def count(self, started: float) -> None:
        for counter in (
            self.requests,
            self.by_transport,
            self.by_method,
            self.by_view,
            self.responses,
            self.by_status,
            self.by_status_view,
        ):
            counter.inc()
        elapsed = time.perf_counter() - started
        self.latency.observe(elapsed)
        self.latency_before.observe(elapsed)


def throttle_allows(environ: dict) -> bool:
    """The action's throttles allow this client. False as well when they cannot be asked
    (the cache is down): Django then asks them again and answers as on every route (503)."""
    try:
        return validate_view.allowed(environ)
    except Exception:  # the cache's own errors (redis.ConnectionError, ...): Django answers
        return False


class LearnedHeaders:
    """The headers of Django's last 200 JSON answer to an eligible request, per scheme
    (http, https), without the per-response ones; as text and as ASGI bytes."""

    def __init__(self) -> None:
        self._text: dict[bool, list[tuple[str, str]]] = {}
        self._raw: dict[bool, list[tuple[bytes, bytes]]] = {}

    def get(self, secure: bool) -> list[tuple[str, str]] | None:
        return self._text.get(secure)

    def raw(self, secure: bool) -> list[tuple[bytes, bytes]] | None:
        return self._raw.get(secure)

    def learn(self, secure: bool, status: int, headers: list[tuple[str, str]], failed: bool):
        if status != 200 or failed:
            return
        kept = [(k, v) for k, v in headers if k.lower() not in _PER_RESPONSE]
        if not any(k.lower() == "content-type" and v == "application/json" for k, v in kept):
            return
        self._text[secure] = kept
        self._raw[secure] = [(k.lower().encode("latin1"), v.encode("latin1")) for k, v in kept]

    def clear(self) -> None:
        self._text.clear()
        self._raw.clear()


class ValidateFastPath:
    """WSGI middleware: the common validate request answered here, the rest by `app`."""

    def __init__(self, app: Callable[[dict, StartResponse], Iterable[bytes]]) -> None:
        self.app = app
        self.headers = LearnedHeaders()
        self._metrics: RouteMetrics | None = None
        setting_changed.connect(self._forget, weak=False)

    def _forget(self, **kwargs) -> None:
        self.headers.clear()

    def __call__(self, environ: dict, start_response: StartResponse) -> Iterable[bytes]:
        if not settings.VALIDATE_FAST_PATH or FAILED in environ or not eligible(environ):
            return self.app(environ, start_response)
        started = time.perf_counter()
        body = environ["wsgi.input"].read(int(environ["CONTENT_LENGTH"]))
        # Whoever answers next reads the same bytes.
        environ["wsgi.input"] = io.BytesIO(body)
        secure = is_secure(environ)
        headers = self.headers.get(secure)
        fields = validate_view.fields_of(body) if headers is not None else None
        if fields is None or not throttle_allows(environ):
            return self._django(environ, start_response, secure)
        request_id = make_request_id(environ.get("HTTP_X_REQUEST_ID", ""))
        # What Django's handler signals around a request (connection age, health checks).
        request_started.send(sender=self.__class__, environ=environ)
        token = context.bind(
            context.RequestContext(ip=environ.get("REMOTE_ADDR") or None, request_id=request_id)
        )
        try:
            outcome = license_validate(**fields)
        except Exception as exc:  # answered by Django's error handling (the API boundary)
            environ[FAILED] = exc
            return self._django(environ, start_response, secure)
        finally:
            context.reset(token)
            request_finished.send(sender=self.__class__)
        content = validate_view.render(outcome_body(outcome))
        start_response(
            "200 OK",
            [
                *headers,
                ("X-Request-ID", request_id),
                ("Content-Length", str(len(content))),
            ],
        )
        if self._metrics is None:
            self._metrics = RouteMetrics()
        self._metrics.count(started)
        return [content]

    def _django(self, environ: dict, start_response: StartResponse, secure: bool):
        """Django answers; a 200 JSON answer teaches the headers of later answers."""

        def learn(status: str, headers: list[tuple[str, str]], exc_info=None):
            code = int(status.split(None, 1)[0])
            self.headers.learn(secure, code, headers, failed=FAILED in environ)
            return start_response(status, headers, exc_info)

        return self.app(environ, learn)
