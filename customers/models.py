from __future__ import annotations

from django.core.validators import RegexValidator
from django.db import models

CUSTOMER_ID_PATTERN = r"^[A-Za-z0-9_-]{1,50}$"
customer_id_validator = RegexValidator(
    CUSTOMER_ID_PATTERN, "Use 1 to 50 letters, digits, '_' or '-'."
)


class Customer(models.Model):
    id = models.CharField(max_length=50, primary_key=True, validators=[customer_id_validator])
    name = models.CharField(max_length=255)
    email = models.EmailField(max_length=254)
    company = models.CharField(max_length=255, blank=True, default="")
    phone = models.CharField(max_length=50, blank=True, default="")
    address = models.TextField(blank=True, default="")
    notes = models.TextField(blank=True, default="")
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]
        indexes = [
            models.Index(fields=["is_active", "id"], name="customer_active_idx"),
            models.Index(fields=["-created_at"], name="customer_created_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.id} — {self.name}"


class CustomerIdSequence(models.Model):
    """The counter behind generated ids (`CUST-000123`); one row, locked while incremented,
    so concurrent creations never draw the same number on any database."""

    name = models.CharField(max_length=32, primary_key=True)
    value = models.BigIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.name}={self.value}"
