"""Admin for the audit log: look, search, never touch.

The database refuses UPDATE and DELETE on audit entries anyway; the admin does not even
offer them, so no one is led to try.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _

from audit.models import AuditEntry

ENTRY_FIELDS = (
    "id",
    "at",
    "action",
    "actor",
    "user",
    "partner",
    "object_type",
    "object_id",
    "details",
    "request_id",
    "prev_hash",
    "hash",
)


@admin.register(AuditEntry)
class AuditEntryAdmin(admin.ModelAdmin):
    list_display = ["id", "at", "action", "actor", "object", "request_id"]
    list_filter = ["action"]
    search_fields = ["action", "=object_id"]
    date_hierarchy = "at"
    list_per_page = 100
    show_full_result_count = False  # the log only grows; counting it on every page is wasted work
    fields = ENTRY_FIELDS
    readonly_fields = ENTRY_FIELDS

    @admin.display(description=_("object"), ordering="object_type")
    def object(self, obj: AuditEntry) -> str:
        return f"{obj.object_type}:{obj.object_id}" if obj.object_type else obj.object_id

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
