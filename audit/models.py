"""The audit log: append-only, hash-chained entries of everything that must be accountable."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _


class AuditEntry(models.Model):
    """One audited action. Each entry carries the SHA-256 of the one before it.

    Written in the same transaction as the action it records; the database refuses
    UPDATE and DELETE on this table (see the migration's trigger).
    """

    id = models.BigAutoField(primary_key=True)
    at = models.DateTimeField(_("time"))
    action = models.CharField(_("action"), max_length=60, db_index=True)
    actor = models.CharField(_("actor"), max_length=150)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    partner = models.ForeignKey(
        "partners.Partner", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    object_type = models.CharField(_("object type"), max_length=60, blank=True)
    object_id = models.CharField(_("object id"), max_length=64, blank=True)
    details = models.JSONField(_("details"), default=dict)
    request_id = models.CharField(_("request id"), max_length=64, blank=True)
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64, unique=True)

    class Meta:
        verbose_name = _("audit entry")
        verbose_name_plural = _("audit entries")
        ordering = ["id"]
        indexes = [
            models.Index(fields=["object_type", "object_id"]),
            # The ledger filters by date range.
            models.Index(fields=["at"], name="audit_entry_at_idx"),
            # The ledger finds the end of each viewing: the next stop of the same camera.
            models.Index(
                fields=["object_id", "id"],
                name="audit_view_stop_idx",
                condition=models.Q(action="video.view_stop", object_type="camera"),
            ),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.action} by {self.actor}"
