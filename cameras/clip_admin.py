"""Admin for saved clips: everything read-only except the legal hold, which needs a reason.

Setting or clearing the hold goes through `cameras.clips` (row lock, audit entry), never
a plain save. Clips are created by operators and destroyed by the retention purge only.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _

from cameras.clips import ClipError, clip_legal_hold_clear, clip_legal_hold_set
from cameras.models import Clip

READ_ONLY = (
    "camera",
    "incident",
    "created_by",
    "created_at",
    "requested_seconds",
    "mode",
    "status",
    "error",
    "period_start",
    "period_end",
    "file",
    "size_bytes",
    "sha256",
    "expires_at",
    "legal_hold_reason",
    "legal_hold_by",
    "legal_hold_at",
    "destroyed_at",
)


class ClipAdminForm(forms.ModelForm):
    hold_change_reason = forms.CharField(
        label=_("Reason for the legal hold change"),
        required=False,
        max_length=300,
        widget=forms.TextInput(attrs={"size": 80}),
        help_text=_("Required when setting or clearing the legal hold; written to the audit log."),
    )

    class Meta:
        model = Clip
        fields = ["legal_hold"]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if "legal_hold" in self.changed_data and not (data.get("hold_change_reason") or "").strip():
            self.add_error("hold_change_reason", _("A reason is required to set or clear a legal hold."))
        return data


@admin.register(Clip)
class ClipAdmin(admin.ModelAdmin):
    form = ClipAdminForm
    list_display = [
        "id",
        "camera",
        "incident",
        "status",
        "period_start",
        "expires_at",
        "legal_hold",
        "destroyed_at",
    ]
    list_filter = ["status", "mode", "legal_hold"]
    search_fields = ["=id", "camera__code", "=incident__id", "sha256"]
    list_select_related = ["camera", "incident"]
    date_hierarchy = "created_at"
    show_full_result_count = False
    readonly_fields = READ_ONLY
    fields = [*READ_ONLY[:14], "legal_hold", "hold_change_reason", *READ_ONLY[14:]]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # the row must outlive its file: the ledger points at it

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        if obj is not None and obj.destroyed_at is not None:
            return [*READ_ONLY, "legal_hold"]
        return READ_ONLY

    def save_model(self, request: HttpRequest, obj: Clip, form: Any, change: bool) -> None:
        if "legal_hold" not in form.changed_data:
            return
        reason = form.cleaned_data.get("hold_change_reason", "")
        change_hold = clip_legal_hold_set if obj.legal_hold else clip_legal_hold_clear
        try:
            change_hold(clip_id=obj.pk, user=request.user, reason=reason)  # type: ignore[arg-type]
        except ClipError as exc:
            self.message_user(request, str(exc), level=messages.ERROR)
