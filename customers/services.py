"""Every write to customers, each with its audit row in the same transaction."""

from __future__ import annotations

import re
from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction

from aegis.core.exceptions import Conflict, NotFound, ValidationFailed
from audit.services import audit_record
from customers.models import CUSTOMER_ID_PATTERN, Customer, CustomerIdSequence


class CustomerNotFound(NotFound):
    code = "customer_not_found"
    default_detail = "Customer not found."


class CustomerInactive(Conflict):
    code = "customer_inactive"
    default_detail = "The customer is inactive."


class CustomerAlreadyExists(Conflict):
    code = "customer_exists"
    default_detail = "A customer with this id already exists."


class CustomerHasLicenses(Conflict):
    code = "customer_has_licenses"
    default_detail = "The customer holds licenses and cannot be deleted; deactivate it instead."


_ID_RE = re.compile(CUSTOMER_ID_PATTERN)
UPDATABLE_FIELDS = ("name", "email", "company", "phone", "address", "notes", "is_active")
_MAX_LENGTHS = {"name": 255, "email": 254, "company": 255, "phone": 50}


def _clean(fields: dict[str, Any]) -> dict[str, Any]:
    """Apply the field rules shared by create and update; raise ValidationFailed on any."""
    errors: dict[str, list[str]] = {}
    cleaned: dict[str, Any] = {}
    for name, value in fields.items():
        if name == "is_active":
            if not isinstance(value, bool):
                errors.setdefault(name, []).append("Must be true or false.")
            cleaned[name] = value
            continue
        if not isinstance(value, str):
            errors.setdefault(name, []).append("Must be a string.")
            continue
        value = value.strip()
        if "\x00" in value:
            errors.setdefault(name, []).append("Must not contain NUL characters.")
        if name in _MAX_LENGTHS and len(value) > _MAX_LENGTHS[name]:
            errors.setdefault(name, []).append(f"Must be at most {_MAX_LENGTHS[name]} characters.")
        cleaned[name] = value
    if "name" in cleaned and not cleaned["name"] and "name" not in errors:
        errors.setdefault("name", []).append("This field may not be blank.")
    if "email" in cleaned and "email" not in errors:
        try:
            validate_email(cleaned["email"])
        except DjangoValidationError:
            errors.setdefault("email", []).append("Enter a valid email address.")
        cleaned["email"] = cleaned["email"].lower() if "email" not in errors else cleaned["email"]
    if errors:
        raise ValidationFailed("Invalid customer data.", errors=errors)
    return cleaned


def _next_customer_id() -> str:
    """Draw the next `CUST-000123` id. Runs inside the caller's transaction."""
    seq, _ = CustomerIdSequence.objects.select_for_update().get_or_create(name="customer")
    while True:
        seq.value += 1
        candidate = f"CUST-{seq.value:06d}"
        if not Customer.objects.filter(pk=candidate).exists():
            seq.save(update_fields=["value"])
            return candidate


@transaction.atomic
def customer_create(
    *,
    actor: str,
    name: str,
    email: str,
    id: str | None = None,
    company: str = "",
    phone: str = "",
    address: str = "",
    notes: str = "",
    is_active: bool = True,
) -> Customer:
    """Create a customer and audit `customer.created`.

    Raises ValidationFailed (bad field), CustomerAlreadyExists (id taken).
    """
    fields = _clean(
        {
            "name": name,
            "email": email,
            "company": company,
            "phone": phone,
            "address": address,
            "notes": notes,
            "is_active": is_active,
        }
    )
    if id is not None:
        if not isinstance(id, str) or not _ID_RE.match(id):
            raise ValidationFailed.field("id", "Use 1 to 50 letters, digits, '_' or '-'.")
        if Customer.objects.filter(pk=id).exists():
            raise CustomerAlreadyExists(f"Customer {id} already exists.")
    else:
        id = _next_customer_id()
    try:
        # A savepoint, so a concurrent insert of the same id turns into a clean 409.
        with transaction.atomic():
            customer = Customer.objects.create(id=id, **fields)
    except IntegrityError as exc:
        raise CustomerAlreadyExists(f"Customer {id} already exists.") from exc
    audit_record(
        event_type="customer.created",
        actor=actor,
        customer_id=customer.id,
        event_data={k: v for k, v in fields.items() if k != "notes"},
    )
    return customer


@transaction.atomic
def customer_update(*, actor: str, customer_id: str, **changes: Any) -> Customer:
    """Change some of a customer's fields and audit `customer.updated` with what changed.

    Raises CustomerNotFound, ValidationFailed. No row is written when nothing changes.
    """
    unknown = set(changes) - set(UPDATABLE_FIELDS)
    if unknown:
        raise ValidationFailed(
            "Unknown fields.",
            errors={f: ["This field cannot be changed."] for f in sorted(unknown)},
        )
    customer = _get_for_update(customer_id)
    cleaned = _clean(changes)
    diff = {
        field: {"from": getattr(customer, field), "to": value}
        for field, value in cleaned.items()
        if getattr(customer, field) != value
    }
    if not diff:
        return customer
    for field, change in diff.items():
        setattr(customer, field, change["to"])
    customer.save(update_fields=[*diff, "updated_at"])
    audit_record(
        event_type="customer.updated",
        actor=actor,
        customer_id=customer.id,
        event_data={"changes": {k: v for k, v in diff.items() if k != "notes"}}
        | ({"notes_changed": True} if "notes" in diff else {}),
    )
    return customer


@transaction.atomic
def customer_delete(*, actor: str, customer_id: str) -> None:
    """Delete a customer that holds no license and audit `customer.deleted`.

    Raises CustomerNotFound, CustomerHasLicenses (licenses are never deleted, so a customer
    that ever held one stays; deactivate it instead).
    """
    customer = _get_for_update(customer_id)
    if customer.licenses.exists():
        raise CustomerHasLicenses()
    snapshot = {"name": customer.name, "email": customer.email, "company": customer.company}
    customer.delete()
    audit_record(
        event_type="customer.deleted", actor=actor, customer_id=customer_id, event_data=snapshot
    )


def _get_for_update(customer_id: str) -> Customer:
    if not isinstance(customer_id, str):
        raise CustomerNotFound()
    try:
        return Customer.objects.select_for_update().get(pk=customer_id)
    except Customer.DoesNotExist:
        raise CustomerNotFound(f"Customer {customer_id} not found.") from None
