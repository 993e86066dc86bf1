from __future__ import annotations

import uuid

from django.db import models
from django.utils import timezone

from customers.models import Customer


class LicenseType(models.TextChoices):
    PERPETUAL = "perpetual", "Perpetual"
    SUBSCRIPTION = "subscription", "Subscription"
    DEMO = "demo", "Demo"


class LicenseStatus(models.TextChoices):
    """The stored state. `expired` is not stored: it follows from `expires_at` (see
    `License.effective_status` and `LicenseQuerySet.with_status`)."""

    ACTIVE = "active", "Active"
    REVOKED = "revoked", "Revoked"


class LicenseQuerySet(models.QuerySet):
    def active(self, now=None):
        now = now or timezone.now()
        return self.filter(status=LicenseStatus.ACTIVE).filter(
            models.Q(expires_at__isnull=True) | models.Q(expires_at__gt=now)
        )

    def expired(self, now=None):
        now = now or timezone.now()
        return self.filter(status=LicenseStatus.ACTIVE, expires_at__lte=now)

    def revoked(self):
        return self.filter(status=LicenseStatus.REVOKED)

    def with_status(self, status: str, now=None):
        """Filter by the status clients see: active, revoked or expired."""
        return {
            "active": self.active,
            "expired": self.expired,
            "revoked": lambda now=None: self.revoked(),
        }[status](now)


class License(models.Model):
    """An issued license. `id` is the token's `jti`; `token` is the JWS exactly as signed
    (never re-signed). Licenses are never deleted: revocation is a state."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="licenses")
    module_name = models.CharField(max_length=128)
    allowed_major_versions = models.JSONField(default=list)
    license_type = models.CharField(max_length=16, choices=LicenseType.choices)
    status = models.CharField(
        max_length=16, choices=LicenseStatus.choices, default=LicenseStatus.ACTIVE
    )
    token = models.TextField(editable=False)
    key_id = models.CharField(max_length=64, editable=False)
    instance_fingerprint = models.CharField(max_length=71, null=True, blank=True)
    issued_at = models.DateTimeField()
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_reason = models.TextField(blank=True, default="")
    notes = models.TextField(blank=True, default="")
    # Seats (CONTRACT §9): NULL max_instances is no limit; staging seats are counted apart.
    max_instances = models.PositiveIntegerField(null=True, blank=True)
    max_staging_instances = models.PositiveIntegerField(default=2)
    # Successors (CONTRACT §9): the license this one replaces (its token's `replaces`) and
    # the one that replaced it. Both set by the service that issues the successor.
    replaces = models.OneToOneField(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="+", editable=False
    )
    replaced_by = models.OneToOneField(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="+", editable=False
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = LicenseQuerySet.as_manager()

    class Meta:
        ordering = ["-issued_at", "-id"]
        permissions = [("revoke_license", "Can revoke license")]
        indexes = [
            models.Index(fields=["-issued_at", "-id"], name="license_issued_idx"),
            models.Index(fields=["customer", "-issued_at"], name="license_customer_idx"),
            models.Index(fields=["module_name", "-issued_at"], name="license_module_idx"),
            models.Index(fields=["license_type", "-issued_at"], name="license_type_idx"),
            models.Index(fields=["status", "expires_at"], name="license_status_exp_idx"),
            models.Index(fields=["expires_at"], name="license_expires_idx"),
            # "Revoked this month" (dashboard, list filter): a range of the revoked only.
            models.Index(
                fields=["revoked_at"],
                name="license_revoked_at_idx",
                condition=models.Q(status="revoked"),
            ),
            # Every statistic in one index-only scan where PostgreSQL's maintained counts
            # are not there (licensing.selectors.license_counts_scan).
            models.Index(
                fields=["module_name", "license_type", "status", "expires_at"],
                name="license_stats_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.module_name} for {self.customer_id} ({self.id})"

    @property
    def is_expired(self) -> bool:
        return self.expires_at is not None and self.expires_at <= timezone.now()

    @property
    def effective_status(self) -> str:
        return effective_status(self.status, self.expires_at)


class Environment(models.TextChoices):
    PRODUCTION = "production", "Production"
    STAGING = "staging", "Staging"


class Activation(models.Model):
    """A seat of a license held by one Odoo instance (CONTRACT §9). `id` is the `jti` of
    the instance's leases. The seat is held while `lease_expires_at` is ahead and
    `released_at` is empty: an instance that stops checking in frees it with no job."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    license = models.ForeignKey(License, on_delete=models.PROTECT, related_name="activations")
    fingerprint = models.CharField(max_length=71)
    db_uuid = models.CharField(max_length=255)
    domain = models.CharField(max_length=2048)
    environment = models.CharField(
        max_length=16, choices=Environment.choices, default=Environment.PRODUCTION
    )
    odoo_version = models.CharField(max_length=32, blank=True, default="")
    first_seen_at = models.DateTimeField()
    last_seen_at = models.DateTimeField()
    lease_expires_at = models.DateTimeField()
    released_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-last_seen_at", "-id"]
        constraints = [
            # One live activation per instance and license; a released one may be followed
            # by a new one.
            models.UniqueConstraint(
                fields=["license", "fingerprint"],
                condition=models.Q(released_at__isnull=True),
                name="activation_one_live_per_instance",
            ),
        ]
        indexes = [
            models.Index(fields=["license", "fingerprint"], name="activation_seat_idx"),
            models.Index(fields=["db_uuid"], name="activation_db_uuid_idx"),
            models.Index(fields=["first_seen_at"], name="activation_first_seen_idx"),
            # The revocation list counts and lists released seats; the statistics count
            # held ones.
            models.Index(
                fields=["released_at"],
                name="activation_released_idx",
                condition=models.Q(released_at__isnull=False),
            ),
            models.Index(
                fields=["lease_expires_at"],
                name="activation_held_idx",
                condition=models.Q(released_at__isnull=True),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.domain} ({self.environment}) on {self.license_id}"


def effective_status(status: str, expires_at) -> str:
    """The status clients see: `revoked`, `expired` (active but past `expires_at`) or
    `active`. For a License and for a row of `licensing.selectors.license_rows`."""
    if status == LicenseStatus.REVOKED:
        return "revoked"
    if expires_at is not None and expires_at <= timezone.now():
        return "expired"
    return "active"


class _CountRow(models.Model):
    """Licenses per (module, type, stored status, month of expiry in UTC); NULL month for
    the perpetual. Written by PostgreSQL triggers on `licensing_license` (migration 0007),
    read by `licensing.selectors.license_counts`."""

    module_name = models.CharField(max_length=128)
    license_type = models.CharField(max_length=16)
    status = models.CharField(max_length=16)
    expires_month = models.DateField(null=True)
    n = models.BigIntegerField()

    class Meta:
        abstract = True

    def __str__(self) -> str:
        month = self.expires_month or "never"
        return f"{self.module_name} {self.license_type} {self.status} expiring {month}: {self.n}"


class LicenseCount(_CountRow):
    """The folded counts: one row per key (a unique index on PostgreSQL, migration 0007)."""


class LicenseCountDelta(_CountRow):
    """Changes not folded yet: the triggers only ever append here (no lock shared between
    writers), `licensing.counts.fold` moves them into `LicenseCount`."""
