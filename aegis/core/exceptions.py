"""Domain errors raised by services, and their mapping to the contract's error body.

Services raise a `DomainError` subclass; every door turns it into its own kind of answer
(the API's `{"detail", "code"}` body with the status below, a form error in the admin, a
one-line message and a non-zero exit in a command).
"""

from __future__ import annotations


class DomainError(Exception):
    status_code = 400
    code = "invalid"
    default_detail = "The request could not be processed."

    def __init__(self, detail: str | None = None, *, errors: dict[str, list[str]] | None = None):
        self.detail = detail or self.default_detail
        self.errors = errors
        super().__init__(self.detail)


class ValidationFailed(DomainError):
    """One or more fields break a business rule; `errors` maps each field to its messages."""

    status_code = 400
    code = "validation_error"
    default_detail = "Invalid input."

    @classmethod
    def field(cls, name: str, message: str) -> ValidationFailed:
        return cls(message, errors={name: [message]})


class NotFound(DomainError):
    status_code = 404
    code = "not_found"
    default_detail = "Not found."


class Conflict(DomainError):
    status_code = 409
    code = "conflict"
    default_detail = "The request conflicts with the current state."


class ServiceUnavailable(DomainError):
    status_code = 503
    code = "service_unavailable"
    default_detail = "The service is temporarily unavailable."
