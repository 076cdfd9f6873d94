"""Admin for shares and webhook deliveries: read-only records (shares are changed by operators)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _

from partners.models import Share, WebhookDelivery, WebhookMessage


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Share)
class ShareAdmin(ReadOnlyAdmin):
    list_display = [
        "id",
        "incident",
        "partner",
        "event_type",
        "created_by",
        "starts_at",
        "expires_at",
        "state",
    ]
    list_filter = ["partner", "end_reason"]
    search_fields = ["legal_basis", "partner__slug", "incident__external_id"]
    list_select_related = ["incident", "partner", "created_by"]
    # The token's nonce and hash are not shown: neither helps an admin, both help an attacker.
    exclude = ["token_nonce", "token_hash"]

    @admin.display(description=_("state"))
    def state(self, obj: Share) -> str:
        return str(_("active")) if obj.is_active() else obj.end_reason or str(_("expired"))


class WebhookDeliveryInline(admin.TabularInline):
    model = WebhookDelivery
    extra = 0
    fields = ["attempt", "at", "status_code", "error", "duration_ms", "succeeded"]
    readonly_fields = ["attempt", "at", "status_code", "error", "duration_ms", "succeeded"]

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(WebhookMessage)
class WebhookMessageAdmin(ReadOnlyAdmin):
    list_display = ["id", "partner", "event", "state", "attempts", "created_at", "delivered_at"]
    list_filter = ["state", "event", "partner"]
    search_fields = ["idempotency_key", "partner__slug"]
    list_select_related = ["partner"]
    inlines = [WebhookDeliveryInline]


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(ReadOnlyAdmin):
    list_display = ["message", "attempt", "at", "url", "status_code", "error", "duration_ms", "succeeded"]
    list_filter = ["succeeded"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[WebhookDelivery]:
        return super().get_queryset(request).select_related("message__partner")
