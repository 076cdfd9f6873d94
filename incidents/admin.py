"""Admin for incidents: a read-only view with the location on a map.

Incidents change only through the operator workflow (`incidents.services`), which keeps
the timeline, the audit log and the dashboards in step; the admin is for looking.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.utils.translation import gettext_lazy as _
from leaflet.admin import LeafletGeoAdmin

from incidents.models import Incident, IncidentCamera, LocationFix, TimelineEntry

TIMELINE_FIELDS = ("at", "kind", "actor", "text", "partner_visible")
RANKED_CAMERA_FIELDS = ("rank", "camera", "distance_m")
LOCATION_FIX_FIELDS = ("observed_at", "lat_lon", "accuracy_m", "received_at")


class ReadOnlyInline(admin.TabularInline):
    extra = 0

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class TimelineInline(ReadOnlyInline):
    model = TimelineEntry
    fields = TIMELINE_FIELDS
    readonly_fields = TIMELINE_FIELDS
    verbose_name_plural = _("timeline")


class RankedCameraInline(ReadOnlyInline):
    model = IncidentCamera
    fields = RANKED_CAMERA_FIELDS
    readonly_fields = RANKED_CAMERA_FIELDS
    verbose_name_plural = _("ranked cameras")

    def get_queryset(self, request: HttpRequest) -> Any:
        return super().get_queryset(request).select_related("camera").defer("camera__stream_url")


class LocationFixInline(ReadOnlyInline):
    model = LocationFix
    fields = LOCATION_FIX_FIELDS
    readonly_fields = LOCATION_FIX_FIELDS
    verbose_name_plural = _("location fixes")

    @admin.display(description=_("lat, lon"))
    def lat_lon(self, obj: LocationFix) -> str:
        return f"{obj.location.y:.6f}, {obj.location.x:.6f}"


@admin.register(Incident)
class IncidentAdmin(LeafletGeoAdmin):
    modifiable = False  # the map shows where; moving an incident is the partner's or the workflow's job
    list_display = [
        "id",
        "type",
        "partner",
        "center",
        "status",
        "priority",
        "received_at",
        "outside_jurisdiction",
    ]
    list_filter = ["status", "type", "priority", "outside_jurisdiction", "center", "partner"]
    search_fields = ["=id", "external_id", "address", "summary"]
    list_select_related = ["partner", "center"]
    date_hierarchy = "received_at"
    list_per_page = 100
    show_full_result_count = False
    readonly_fields = [
        "partner",
        "external_id",
        "type",
        "priority",
        "status",
        "center",
        "outside_jurisdiction",
        "accuracy_m",
        "address",
        "summary",
        "subject",
        "occurred_at",
        "received_at",
        "updated_at",
        "assignee",
    ]
    fields = [*readonly_fields[:7], "location", *readonly_fields[7:]]
    inlines = [TimelineInline, RankedCameraInline, LocationFixInline]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # incidents arrive from partners

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # the incident is the legal basis of its shares and ledger rows

    def changeform_view(
        self,
        request: HttpRequest,
        object_id: str | None = None,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        # The change page stays a form so the Leaflet map can draw the location, but it
        # never saves: refuse the POST and hide the buttons.
        if request.method == "POST":
            raise PermissionDenied
        extra_context = {
            **(extra_context or {}),
            "show_save": False,
            "show_save_and_continue": False,
            "show_save_and_add_another": False,
            "show_delete": False,
        }
        return super().changeform_view(request, object_id, form_url, extra_context)
