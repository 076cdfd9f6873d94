"""Changes made in the Django admin, in the audit chain (field names only, never values)."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.db import models, transaction
from django.db.models import QuerySet
from django.http import HttpRequest

from audit.services import audit_record


def admin_audit(
    request: HttpRequest, *, obj: models.Model, op: str, changed: list[str] | None = None
) -> None:
    """One audit entry for a change made in the admin. Field names only, never values."""
    details: dict[str, Any] = {"op": op, "changed": changed or [], "repr": str(obj)[:200]}
    audit_record(
        action="admin.change",
        actor=f"user:{request.user.get_username()}",
        user_id=request.user.pk,
        object_type=obj._meta.model_name or "",
        object_id=obj.pk if obj.pk is not None else "",
        details=details,
        request_id=getattr(request, "request_id", ""),
    )


class AuditedAdmin(admin.ModelAdmin):
    """A ModelAdmin whose saves and deletions, its inlines' included, land in the audit log."""

    def changed_fields(self, form: forms.ModelForm) -> list[str]:
        return list(form.changed_data)

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        super().save_model(request, obj, form, change)
        admin_audit(request, obj=obj, op="change" if change else "add", changed=self.changed_fields(form))

    def save_formset(self, request: HttpRequest, form: Any, formset: Any, change: bool) -> None:
        # Recorded before the save: a deleted row has no pk afterwards.
        for deleted in formset.deleted_forms:
            if deleted.instance.pk is not None:
                admin_audit(request, obj=deleted.instance, op="delete")
        super().save_formset(request, form, formset, change)
        for obj in formset.new_objects:
            admin_audit(request, obj=obj, op="add", changed=self._form_changes(formset, obj))
        for obj, changed in formset.changed_objects:
            admin_audit(request, obj=obj, op="change", changed=list(changed))

    @staticmethod
    def _form_changes(formset: Any, obj: models.Model) -> list[str]:
        return next((list(f.changed_data) for f in formset.forms if f.instance is obj), [])

    def delete_model(self, request: HttpRequest, obj: Any) -> None:
        admin_audit(request, obj=obj, op="delete")
        super().delete_model(request, obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        with transaction.atomic():
            for obj in queryset:
                admin_audit(request, obj=obj, op="delete")
            super().delete_queryset(request, queryset)
