"""The audit trail: one append-only row for every state change and every validation.

`license_id`, `customer_id` and `module_name` are plain values, not foreign keys, so a row
outlives the customer it speaks of. The application never updates or deletes a row (the
manager and the model refuse it) and on PostgreSQL a trigger makes the database refuse too
(migration 0002).

State-change rows also form a hash chain (`chain_seq`, `prev_hash`, `hash`; see
`audit/chain.py`), so a row altered behind the application's back is detected.
"""

from __future__ import annotations

from django.db import models
from django.utils import timezone


class AppendOnlyError(Exception):
    """Raised when code tries to change or remove an audit row."""


class AuditLogQuerySet(models.QuerySet):
    def update(self, **kwargs):
        raise AppendOnlyError("The audit log is append-only: rows cannot be updated.")

    def delete(self):
        raise AppendOnlyError("The audit log is append-only: rows cannot be deleted.")

    # bulk_update would bypass update(); refuse it as well.
    def bulk_update(self, objs, fields, batch_size=None):
        raise AppendOnlyError("The audit log is append-only: rows cannot be updated.")


class AuditLog(models.Model):
    id = models.BigAutoField(primary_key=True)
    event_type = models.CharField(max_length=64)
    license_id = models.UUIDField(null=True, blank=True)
    customer_id = models.CharField(max_length=50, null=True, blank=True)
    module_name = models.CharField(max_length=128, null=True, blank=True)
    actor = models.CharField(max_length=200)
    ip = models.GenericIPAddressField(null=True, blank=True)
    request_id = models.CharField(max_length=64, blank=True, default="")
    event_data = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    # The hash chain (audit/chain.py); NULL on validation rows, which are not chained.
    chain_seq = models.BigIntegerField(null=True, blank=True, editable=False)
    prev_hash = models.CharField(max_length=64, null=True, blank=True, editable=False)
    hash = models.CharField(max_length=64, null=True, blank=True, editable=False)

    objects = AuditLogQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = "audit log entry"
        verbose_name_plural = "audit log"
        indexes = [
            models.Index(fields=["-created_at", "-id"], name="audit_newest_idx"),
            models.Index(fields=["event_type", "-created_at"], name="audit_type_newest_idx"),
            models.Index(fields=["license_id", "-created_at"], name="audit_license_idx"),
            models.Index(fields=["customer_id", "-created_at"], name="audit_customer_idx"),
            models.Index(fields=["actor", "-created_at"], name="audit_actor_idx"),
        ]
        constraints = [
            # One row per place in the chain (a fork is impossible); partial, so the
            # millions of unchained validation rows cost the index nothing.
            models.UniqueConstraint(
                fields=["chain_seq"],
                condition=models.Q(chain_seq__isnull=False),
                name="audit_chain_seq_uniq",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M:%S} {self.event_type} by {self.actor}"

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise AppendOnlyError("The audit log is append-only: rows cannot be updated.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise AppendOnlyError("The audit log is append-only: rows cannot be deleted.")


class ValidationRollup(models.Model):
    """Validations per period (an hour, or a minute) and code, folded from
    `license.validated` audit rows.

    Maintained by `audit.rollups` (on demand by the statistics selectors and by
    `manage.py rollup_validations`), never on the validate path itself. Hour rows are kept
    for ever; minute rows only as long as a statistics window needs them (they give the
    boundary of a window that does not start on the hour). `code` is "" for a row that
    carries none.
    """

    HOUR = "hour"
    MINUTE = "minute"

    period = models.CharField(max_length=6, choices=[(HOUR, "hour"), (MINUTE, "minute")])
    start = models.DateTimeField()
    code = models.CharField(max_length=32)
    count = models.BigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["period", "start", "code"], name="validation_rollup_uniq"
            )
        ]

    def __str__(self) -> str:
        return f"{self.period} {self.start:%Y-%m-%d %H:%M} {self.code}: {self.count}"


class RollupCursor(models.Model):
    """How far a rollup has read the audit table: every row with id <= `last_id` is folded."""

    name = models.CharField(max_length=32, primary_key=True)
    last_id = models.BigIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.name} @ {self.last_id}"
