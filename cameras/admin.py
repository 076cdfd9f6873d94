"""Admin for centres and cameras, with Leaflet map widgets served from static files."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _
from leaflet.admin import LeafletGeoAdmin

from audit.admin_changes import AuditedAdmin
from cameras.models import Camera, Center, StaffProfile


@admin.register(Center)
class CenterAdmin(AuditedAdmin, LeafletGeoAdmin):
    list_display = ["name", "slug", "retention_days", "camera_count"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}

    def get_queryset(self, request: HttpRequest) -> Any:
        from django.db.models import Count

        return super().get_queryset(request).annotate(num_cameras=Count("cameras"))

    @admin.display(description=_("cameras"), ordering="num_cameras")
    def camera_count(self, obj: Center) -> int:
        return int(getattr(obj, "num_cameras", 0))


class CameraAdminForm(forms.ModelForm):
    """Keeps the stream URL write-only: the page never contains the stored value."""

    stream_url = forms.CharField(
        label=_("stream URL"),
        required=False,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off", "size": 80}),
        help_text=_("rtsp://user:password@host/path — leave empty to keep the current URL."),
    )
    clear_stream_url = forms.BooleanField(label=_("remove the stream URL"), required=False)

    class Meta:
        model = Camera
        fields = "__all__"  # noqa: DJ007 -- the ModelAdmin decides which fields show

    def clean(self) -> dict[str, Any]:
        # In clean(), not clean_stream_url(): the checkbox comes later in the form, so its
        # value is not known yet when the field's own cleaner runs.
        cleaned = super().clean() or {}
        new = cleaned.get("stream_url", "")
        if cleaned.get("clear_stream_url"):
            cleaned["stream_url"] = ""
        elif not new and self.instance.pk:
            cleaned["stream_url"] = self.instance.stream_url
        elif new and not new.startswith(("rtsp://", "rtsps://", "http://", "https://")):
            self.add_error("stream_url", _("Use an rtsp://, rtsps:// or http(s):// URL."))
        return cleaned


@admin.register(Camera)
class CameraAdmin(AuditedAdmin, LeafletGeoAdmin):
    form = CameraAdminForm
    list_display = ["code", "name", "center", "purpose", "status", "last_seen_at", "ptz"]
    list_filter = ["center", "status", "purpose", "ptz"]
    search_fields = ["code", "name", "address", "managing_agency"]
    list_select_related = ["center"]
    readonly_fields = ["stream_url_redacted", "last_seen_at", "created_at", "updated_at"]
    list_per_page = 100
    show_full_result_count = False  # counting 100k+ rows on every page load is wasted work

    def get_queryset(self, request: HttpRequest) -> Any:
        return super().get_queryset(request).defer("stream_url")

    @admin.display(description=_("stream URL (credentials hidden)"))
    def stream_url_redacted(self, obj: Camera) -> str:
        return obj.stream_url_redacted


@admin.register(StaffProfile)
class StaffProfileAdmin(AuditedAdmin):
    list_display = ["user", "role", "center"]
    list_filter = ["role", "center"]
    autocomplete_fields = ["user"]


# Saved clips have an admin of their own (legal holds go through cameras.clips).
from cameras import clip_admin  # noqa: E402, F401
