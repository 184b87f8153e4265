"""The append-only audit trail. Rows are hash-chained; see audit.services for how they are written.

Changes are refused at three levels: the model (save of an existing row, delete), the queryset (update,
delete, bulk_update) and, on PostgreSQL, a trigger (migration 0002) that refuses UPDATE, DELETE and TRUNCATE
whatever the client; the application's database role does not own the table, so it cannot disable the trigger
(`manage.py dbroles`). The keyed hash chain and its anchor outside the database (`manage.py audit verify`)
detect what gets past all of that.
"""

from __future__ import annotations

from typing import Any, NoReturn

from django.conf import settings
from django.db import models


class AuditImmutableError(PermissionError):
    """Raised by the application when code tries to change or remove an audit event."""


class AuditEventQuerySet(models.QuerySet["AuditEvent"]):
    def update(self, **kwargs: Any) -> NoReturn:
        raise AuditImmutableError("Audit events are append-only and cannot be changed.")

    def delete(self) -> NoReturn:
        raise AuditImmutableError("Audit events are append-only and cannot be deleted.")

    def bulk_update(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise AuditImmutableError("Audit events are append-only and cannot be changed.")

    def bulk_create(self, *args: Any, **kwargs: Any) -> NoReturn:
        # Appends must go through audit.services.audit_event_record, which takes the chain lock and hashes.
        raise AuditImmutableError("Use audit.services.audit_event_record to append audit events.")

    def update_or_create(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise AuditImmutableError("Audit events are append-only and cannot be changed.")


AuditEventManager = models.Manager.from_queryset(AuditEventQuerySet)


class HashScheme(models.TextChoices):
    """How a row's `row_hash` was computed (audit.services.compute_row_hash)."""

    # Rows written before keyed hashing (plain sha256, which anyone can recompute); migration audit/0004
    # marks every existing row so. A chain may go from SHA256 to HMAC_SHA256 once, never back.
    SHA256 = "sha256", "sha256 (before keyed hashing)"
    HMAC_SHA256 = "hmac-sha256", "HMAC-SHA256 under the audit key"


class AuditEvent(models.Model):
    seq = models.PositiveBigIntegerField(unique=True, help_text="Position in the hash chain, from 1.")
    created_at = models.DateTimeField(db_index=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    actor_username = models.CharField(max_length=150, blank=True, help_text="Kept if the account is renamed.")
    action = models.CharField(max_length=64, db_index=True)
    target_type = models.CharField(max_length=64, blank=True)
    target_id = models.CharField(max_length=64, blank=True)
    case_id = models.BigIntegerField(null=True, blank=True, db_index=True)
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=400, blank=True)
    detail = models.JSONField(default=dict, blank=True)
    prev_hash = models.CharField(max_length=64)
    row_hash = models.CharField(max_length=64, unique=True)
    hash_scheme = models.CharField(max_length=16, choices=HashScheme.choices, default=HashScheme.HMAC_SHA256)

    objects = AuditEventManager()

    class Meta:
        ordering = ["seq"]
        indexes = [models.Index(fields=["target_type", "target_id"])]
        default_permissions = ("view",)  # nobody is ever granted add/change/delete
        # view_auditevent alone shows the events in the viewer's scope (audit.selectors); this shows them all.
        permissions = [("view_all_auditevent", "Can view the whole audit trail")]

    def __str__(self) -> str:
        return f"#{self.seq} {self.created_at:%Y-%m-%d %H:%M:%S} {self.actor_username or '-'} {self.action}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if self.pk is not None or kwargs.get("force_update"):
            raise AuditImmutableError("Audit events are append-only and cannot be changed.")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise AuditImmutableError("Audit events are append-only and cannot be deleted.")
