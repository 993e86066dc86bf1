"""Structured logs: structlog through the standard library, one format for every logger.

`LOG_FORMAT=json` writes one JSON object per line (timestamp, level, event, logger, and
for requests request_id, method, path, status, duration_ms, actor); `LOG_FORMAT=text`
writes the same fields readably. Django's, gunicorn's and the libraries' stdlib records go
through the same formatter, so every line has the same shape.

Nothing secret reaches a log line: request bodies and query strings are never logged,
values under secret-looking keys are masked, and anything shaped like a license token,
an API key or a PEM private key is masked wherever it appears (`mask_secrets`).

Settings call `build_logging(...)`; django-structlog's request middleware emits
`request_started` (debug) and `request_finished`, completed by the receivers below.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import time
from collections.abc import Mapping
from typing import Any

import structlog

MASK = "***"
# Values under these keys (any case, `-` or `_`) are never written.
_SECRET_KEYS = frozenset(
    {
        "token",
        "key",
        "api_key",
        "x_api_key",
        "raw_key",
        "password",
        "passphrase",
        "secret",
        "secret_key",
        "private_key",
        "authorization",
        "cookie",
        "set_cookie",
        "sessionid",
        "csrftoken",
        "csrfmiddlewaretoken",
    }
)
# A compact JWS (every license token starts with the base64 of `{"`), an API key
# (djangorestframework-api-key: 8-character prefix, dot, 32-character secret) and a PEM block.
_SECRET_PATTERNS = [
    (re.compile(r"eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*"), "[token]"),
    (re.compile(r"\b[A-Za-z0-9]{8}\.[A-Za-z0-9]{32}\b"), "[api-key]"),
    (
        re.compile(
            r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?(-----END [A-Z ]*PRIVATE KEY-----|$)", re.S
        ),
        "[private-key]",
    ),
]


def _is_secret_key(key: object) -> bool:
    return str(key).lower().replace("-", "_") in _SECRET_KEYS


# Matches wherever one of the patterns above could start: most strings need none of them.
_MAYBE_SECRET = re.compile(r"eyJ|-----BEGIN |\b[A-Za-z0-9]{8}\.[A-Za-z0-9]{32}\b")


def _mask(value: Any) -> Any:
    if isinstance(value, str):
        if not _MAYBE_SECRET.search(value):
            return value
        for pattern, replacement in _SECRET_PATTERNS:
            value = pattern.sub(replacement, value)
        return value
    if isinstance(value, Mapping):
        return {k: MASK if _is_secret_key(k) else _mask(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_mask(v) for v in value]
    return value


def mask_secrets(logger, method_name, event_dict):
    """structlog processor: mask secret keys and token/API-key/PEM-shaped values."""
    return {k: MASK if _is_secret_key(k) else _mask(v) for k, v in event_dict.items()}


def describe_requests(logger, method_name, event_dict):
    """structlog processor: Django passes the HttpRequest as `extra`; keep method and path
    (never the query string, the headers or the body)."""
    request = event_dict.get("request")
    if hasattr(request, "META") and hasattr(request, "path"):
        event_dict["request"] = f"{request.method} {request.path}"
    return event_dict


def _renderer(log_format: str):
    if log_format == "json":
        return structlog.processors.JSONRenderer(sort_keys=False)
    # Plain tracebacks: with `rich` importable (a development dependency pulls it in), structlog
    # would render every frame's locals, unmasked (tokens, keys) and, for large objects,
    # without bound.
    return structlog.dev.ConsoleRenderer(
        colors=False, exception_formatter=structlog.dev.plain_traceback
    )


_EXTRAS = (
    "remote_ip",
    "method",
    "path",
    "status",
    "status_code",
    "bytes",
    "duration_ms",
    "request_id",
    "user_agent",
    "request",
)
_FIRST = ("timestamp", "level", "event", "logger", "request_id")


def first_keys(logger, method_name, event_dict):
    """structlog processor: timestamp, level, event, ... first, so lines read left to right."""
    ordered = {k: event_dict[k] for k in _FIRST if k in event_dict}
    ordered.update((k, v) for k, v in event_dict.items() if k not in ordered)
    return ordered


# Processors for records from the standard library (Django, gunicorn, psycopg, ...).
_FOREIGN_PRE_CHAIN = [
    structlog.contextvars.merge_contextvars,
    structlog.stdlib.add_log_level,
    structlog.stdlib.add_logger_name,
    # `extra=` fields worth keeping (gunicorn's access line, Django's request records).
    structlog.stdlib.ExtraAdder(allow=_EXTRAS),
    structlog.processors.TimeStamper(fmt="iso", utc=True),
]


def formatter(log_format: str) -> structlog.stdlib.ProcessorFormatter:
    """The logging.Formatter every handler uses (also gunicorn's, see GunicornLogger)."""
    processors = [structlog.stdlib.ProcessorFormatter.remove_processors_meta]
    if log_format == "json":
        # Tracebacks as data, without frame locals (they may hold tokens or keys).
        processors.append(
            structlog.processors.ExceptionRenderer(
                structlog.tracebacks.ExceptionDictTransformer(show_locals=False)
            )
        )
    processors += [describe_requests, mask_secrets, first_keys, _renderer(log_format)]
    return _Formatter(
        foreign_pre_chain=_FOREIGN_PRE_CHAIN, processors=processors, json_lines=log_format == "json"
    )


_ACCESS_LOGGER = "gunicorn.access"


class _Formatter(structlog.stdlib.ProcessorFormatter):
    """structlog's formatter, with the access line (one per request) written directly.

    Through the twelve processors an access line cost a noticeable share of a validation's
    CPU under load; written here it is the same line — same keys in the same order, same
    masking, same JSON (tests/ops/test_logging.py compares the two) — for a fraction
    (docs/performance.md). Any other record, or an access record with bound context
    variables, an exception or a stack, takes the processors."""

    def __init__(self, *args, json_lines: bool = False, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._json_lines = json_lines

    def format(self, record):
        if (
            not self._json_lines
            or record.name != _ACCESS_LOGGER
            or record.exc_info
            or record.stack_info
            or structlog.contextvars.get_contextvars()
        ):
            return super().format(record)
        return access_line(record)


def access_line(record) -> str:
    """What the processors write for a plain access record in JSON (see _Formatter)."""
    fields = record.__dict__
    line = {
        "timestamp": dt.datetime.now(tz=dt.UTC).isoformat().replace("+00:00", "Z"),
        "level": record.levelname.lower(),
        "event": record.getMessage(),
        "logger": record.name,
    }
    if "request_id" in fields:
        line["request_id"] = fields["request_id"]
    for key in _EXTRAS:
        if key in fields and key != "request_id":
            line[key] = fields[key]
    if "request" in line:
        line = describe_requests(None, None, line)
    # mask_secrets, knowing that none of these keys is a secret one (checked below).
    return _JSON.encode({key: _mask(value) for key, value in line.items()})


if any(_is_secret_key(key) for key in (*_FIRST, *_EXTRAS)):
    raise AssertionError("an access line field is named like a secret: mask it by key")


# json.dumps(..., default=...) as structlog's JSONRenderer calls it, built once.
_JSON = json.JSONEncoder(default=structlog.processors._json_fallback_handler)


def build_logging(*, log_format: str, level: str) -> dict[str, Any]:
    """Configure structlog and return Django's LOGGING dict for `log_format` (json|text)."""
    if log_format not in {"json", "text"}:
        raise ValueError(f"LOG_FORMAT must be json or text, not {log_format!r}")
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.stdlib.filter_by_level,
            structlog.stdlib.add_log_level,
            structlog.stdlib.add_logger_name,
            structlog.stdlib.PositionalArgumentsFormatter(),
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.StackInfoRenderer(),
            structlog.processors.UnicodeDecoder(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    connect_request_signals()
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"structured": {"()": formatter, "log_format": log_format}},
        "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "structured"}},
        "root": {"handlers": ["console"], "level": level},
        "loggers": {
            # Django's default handlers print plain text; everything goes to the root's.
            "django": {"handlers": [], "level": level, "propagate": True},
            # django-structlog's request_finished replaces Django's own per-request lines.
            "django.server": {"handlers": [], "level": "WARNING", "propagate": True},
            # 4xx are answered and logged by request_finished; keep django.request for 5xx.
            "django.request": {"handlers": [], "level": "ERROR", "propagate": True},
        },
    }


# --- request lines (django-structlog signals) -------------------------------------------------


def _actor(request) -> str:
    user = getattr(request, "user", None)
    if user is None:
        return "public"
    # Imported here: settings import this module, before Django REST framework may load.
    from aegis.core.api.authentication import actor_of

    return actor_of(request)


def _on_request_started(sender, request, logger, log_kwargs, **kwargs):
    from aegis.core.middleware import client_ip

    request._aegis_log_started = time.perf_counter()
    # One request id for logs, audit rows and the X-Request-ID response header: the one
    # RequestContextMiddleware validated or generated (an incoming header is only trusted
    # when it is short and plain).
    request_id = getattr(request, "request_id", None)
    if request_id:
        structlog.contextvars.bind_contextvars(request_id=request_id)
    structlog.contextvars.bind_contextvars(ip=client_ip(request))
    log_kwargs.pop("request", None)  # method + path below; never the query string
    log_kwargs.update(method=request.method, path=request.path)


def _on_request_finished(sender, request, logger, response, log_kwargs, **kwargs):
    started = getattr(request, "_aegis_log_started", None)
    log_kwargs.pop("request", None)
    status = log_kwargs.pop("code", None) or response.status_code
    log_kwargs.update(
        method=request.method,
        path=request.path,
        status=status,
        duration_ms=round((time.perf_counter() - started) * 1000, 2) if started else None,
        actor=_actor(request),
    )


def _on_request_failed(sender, request, logger, exception, log_kwargs, **kwargs):
    log_kwargs["code"] = 500
    _on_request_finished(sender, request, logger, None, log_kwargs)


def connect_request_signals() -> None:
    from django_structlog import signals

    signals.bind_extra_request_metadata.connect(_on_request_started, dispatch_uid="aegis-log")
    signals.bind_extra_request_finished_metadata.connect(
        _on_request_finished, dispatch_uid="aegis-log"
    )
    signals.bind_extra_request_failed_metadata.connect(_on_request_failed, dispatch_uid="aegis-log")
