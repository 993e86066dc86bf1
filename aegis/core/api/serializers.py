"""Strict serializer building blocks: JSON types are checked, never coerced.

DRF's CharField turns 123 into "123" and its BooleanField takes "yes" or 1; a license API
takes what its schema says and answers 400 otherwise. Unknown fields are refused too, so a
misspelt optional field is an error rather than silently ignored.
"""

from __future__ import annotations

import datetime as dt

from django.utils import timezone
from rest_framework import serializers
from rest_framework.validators import ProhibitSurrogateCharactersValidator


def instant(value: dt.datetime | None, tz: dt.tzinfo | None = None) -> str | None:
    """An aware datetime as DRF's DateTimeField writes it (ISO 8601 in the current time
    zone, `Z` for UTC), at a fraction of its cost: list pages format four per row. Pass
    `tz` (timezone.get_current_timezone()) when formatting several."""
    if value is None:
        return None
    text = value.astimezone(tz or timezone.get_current_timezone()).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


class ProhibitSurrogates(ProhibitSurrogateCharactersValidator):
    """DRF's surrogate check at C speed: a string holds a surrogate code point exactly when
    UTF-8 cannot encode it. DRF's own check (a Python loop over every character) then says
    which one. Its loop was most of the cost of reading a validate request, whose token is
    hundreds of characters (docs/performance.md)."""

    def __call__(self, value):
        try:
            str(value).encode("utf-8")
        except UnicodeEncodeError:
            super().__call__(value)


class StrictCharField(serializers.CharField):
    default_error_messages = {"invalid": "Must be a string."}

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.validators = [
            ProhibitSurrogates() if isinstance(v, ProhibitSurrogateCharactersValidator) else v
            for v in self.validators
        ]

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        # The limit counts what was sent, as the schema's maxLength does: DRF would measure
        # only after trimming whitespace.
        if self.max_length is not None and len(data) > self.max_length:
            self.fail("max_length", max_length=self.max_length)
        return super().to_internal_value(data)


class StrictIntegerField(serializers.IntegerField):
    default_error_messages = {"invalid": "Must be an integer."}

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictBooleanField(serializers.BooleanField):
    default_error_messages = {"invalid": "Must be true or false."}

    def to_internal_value(self, data):
        if not isinstance(data, bool):
            self.fail("invalid")
        return data


class StrictSerializer(serializers.Serializer):
    """A request body: a JSON object with only the declared fields."""

    def to_internal_value(self, data):
        if isinstance(data, dict):
            unknown = sorted(set(data) - set(self.fields))
            if unknown:
                raise serializers.ValidationError({name: ["Unknown field."] for name in unknown})
        return super().to_internal_value(data)


class ErrorSerializer(serializers.Serializer):
    """The one error body of the API (CONTRACT §6); documents every 4xx/5xx response."""

    detail = serializers.CharField(help_text="What went wrong, for a human.")
    code = serializers.CharField(help_text="A stable machine code, e.g. `already_revoked`.")
    errors = serializers.DictField(
        child=serializers.ListField(child=serializers.CharField()),
        required=False,
        help_text="Field name → messages; present on validation errors only.",
    )
