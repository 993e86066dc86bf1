"""Strict JSON in: every request body under /api is JSON, and only sane JSON.

Refused with 400 `parse_error`: invalid UTF-8 or JSON, NaN/Infinity and numbers too large
for a float, nesting deeper than `MAX_DEPTH`, and strings (keys or values) holding NUL
characters or lone surrogates, which no database column or JSON encoder accepts. The body
size limit is the middleware's (413).
"""

from __future__ import annotations

import json
import math

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

MAX_DEPTH = 20


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError("number out of range")
    return value


def _reject_constant(name: str):
    raise ValueError(f"{name} is not valid JSON")


def _check(value, depth: int = 1) -> None:
    """Walk the parsed document once: depth and string sanity."""
    if depth > MAX_DEPTH:
        raise ParseError(f"JSON nested deeper than {MAX_DEPTH} levels.")
    if isinstance(value, dict):
        for key, item in value.items():
            _check_string(key)
            _check(item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            _check(item, depth + 1)
    elif isinstance(value, str):
        _check_string(value)


def _check_string(text: str) -> None:
    if "\x00" in text:
        raise ParseError("JSON strings must not contain NUL characters.")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ParseError("JSON strings must be valid Unicode (lone surrogate).") from None


class StrictJSONParser(JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        try:
            data = stream.read().decode("utf-8")
            value = json.loads(data, parse_float=_finite_float, parse_constant=_reject_constant)
        except UnicodeDecodeError:
            raise ParseError("The request body is not valid UTF-8.") from None
        except RecursionError:
            raise ParseError(f"JSON nested deeper than {MAX_DEPTH} levels.") from None
        except ValueError as exc:  # JSONDecodeError, or a number too large to read
            raise ParseError(f"Malformed JSON: {exc}") from None
        _check(value)
        return value
