"""Camera registry: control centres with their jurisdictions, and the cameras they watch."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

from django.conf import settings
from django.contrib.gis.db import models
from django.core.validators import MaxValueValidator, MinValueValidator
from django.utils.translation import gettext_lazy as _


class Center(models.Model):
    """A CCTV control centre (통합관제센터) and the area it is responsible for.

    Events are routed by location to the centre whose jurisdiction covers them. The
    jurisdiction is a geography so that distances to it come out in metres.
    """

    name = models.CharField(_("name"), max_length=120)
    slug = models.SlugField(_("slug"), max_length=60, unique=True)
    jurisdiction = models.MultiPolygonField(_("jurisdiction"), geography=True, srid=4326)
    retention_days = models.PositiveIntegerField(
        _("retention days"),
        default=30,
        validators=[MinValueValidator(1), MaxValueValidator(3650)],
        help_text=_("How long saved footage is kept unless a camera says otherwise."),
    )
    phone = models.CharField(_("phone"), max_length=40, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = _("control centre")
        verbose_name_plural = _("control centres")
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class CameraStatus(models.TextChoices):
    ONLINE = "online", _("online")
    OFFLINE = "offline", _("offline")
    UNKNOWN = "unknown", _("unknown")


class CameraPurpose(models.TextChoices):
    """설치목적구분 of the national CCTV standard data."""

    CRIME_PREVENTION = "crime_prevention", "방범"
    FACILITY_SAFETY = "facility_safety", "시설안전"
    TRAFFIC = "traffic", "교통"
    FIRE = "fire", "화재"
    DISASTER = "disaster", "재난"
    OTHER = "other", "기타"


def redact_stream_url(url: str) -> str:
    """The stream URL with any user name and password replaced, safe to show or log."""
    if not url:
        return ""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, f"***@{host}", parts.path, parts.query, parts.fragment))


class Camera(models.Model):
    """A CCTV camera on the map.

    `stream_url` may carry the camera's credentials: it is read only by the video relay
    and is never serialized to a browser, an API response or a log (see `redact_stream_url`).
    """

    code = models.CharField(_("code"), max_length=64, unique=True)
    name = models.CharField(_("name"), max_length=200)
    center = models.ForeignKey(
        Center,
        verbose_name=_("control centre"),
        on_delete=models.PROTECT,
        related_name="cameras",
        null=True,
        blank=True,
    )
    location = models.PointField(_("location"), geography=True, srid=4326)
    address = models.CharField(_("address"), max_length=300, blank=True)
    stream_url = models.CharField(_("stream URL"), max_length=500, blank=True)
    status = models.CharField(
        _("status"), max_length=10, choices=CameraStatus.choices, default=CameraStatus.UNKNOWN
    )
    last_seen_at = models.DateTimeField(_("last seen"), null=True, blank=True)
    purpose = models.CharField(
        _("purpose"), max_length=20, choices=CameraPurpose.choices, default=CameraPurpose.CRIME_PREVENTION
    )
    bearing_deg = models.FloatField(
        _("bearing (°)"),
        null=True,
        blank=True,
        validators=[MinValueValidator(0), MaxValueValidator(360)],
        help_text=_("Direction the camera faces, clockwise from north."),
    )
    fov_deg = models.FloatField(
        _("field of view (°)"), default=60, validators=[MinValueValidator(1), MaxValueValidator(360)]
    )
    range_m = models.FloatField(_("range (m)"), default=50, validators=[MinValueValidator(1)])
    ptz = models.BooleanField(_("PTZ"), default=False)
    retention_days = models.PositiveIntegerField(
        _("retention days"),
        null=True,
        blank=True,
        validators=[MinValueValidator(1), MaxValueValidator(3650)],
        help_text=_("Empty: the centre's retention period applies."),
    )
    managing_agency = models.CharField(_("managing agency"), max_length=120, blank=True)
    agency_phone = models.CharField(_("agency phone"), max_length=40, blank=True)
    camera_count = models.PositiveIntegerField(_("cameras at this point"), default=1)
    pixels = models.PositiveIntegerField(_("pixels (10k)"), null=True, blank=True)
    installed_on = models.CharField(_("installed (YYYY-MM)"), max_length=7, blank=True)
    source_date = models.DateField(_("data reference date"), null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = _("camera")
        verbose_name_plural = _("cameras")
        ordering = ["code"]
        indexes = [models.Index(fields=["center", "status"])]

    def __str__(self) -> str:
        return f"{self.code} {self.name}"

    def __repr__(self) -> str:
        return f"<Camera {self.pk} {self.code}>"

    @property
    def effective_retention_days(self) -> int:
        if self.retention_days:
            return self.retention_days
        if self.center_id is not None and self.center is not None:
            return self.center.retention_days
        return int(settings.DEFAULT_RETENTION_DAYS)

    @property
    def stream_url_redacted(self) -> str:
        return redact_stream_url(self.stream_url)


class StaffRole(models.TextChoices):
    OPERATOR = "operator", _("operator")
    SUPERVISOR = "supervisor", _("supervisor")
    PRIVACY_OFFICER = "privacy_officer", _("privacy officer")
    ADMIN = "admin", _("administrator")


class StaffProfile(models.Model):
    """A control-room person's role and, for operators and supervisors, their centre."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="staff")
    role = models.CharField(_("role"), max_length=20, choices=StaffRole.choices)
    center = models.ForeignKey(
        Center, verbose_name=_("control centre"), on_delete=models.PROTECT, null=True, blank=True
    )

    class Meta:
        verbose_name = _("staff profile")
        verbose_name_plural = _("staff profiles")

    def __str__(self) -> str:
        return f"{self.user} ({self.role})"


class StaffSession(models.Model):
    """A live login of a control-room user, so "log out everywhere" can end all of them."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    session_key = models.CharField(max_length=40, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    user_agent = models.CharField(max_length=200, blank=True)

    def __str__(self) -> str:
        return f"{self.user} {self.created_at:%Y-%m-%d %H:%M}"


class ClipStatus(models.TextChoices):
    PENDING = "pending", _("waiting to record")
    RECORDING = "recording", _("recording")
    READY = "ready", _("ready")
    FAILED = "failed", _("failed")
    DESTROYED = "destroyed", _("destroyed")


class ClipMode(models.TextChoices):
    NEXT = "next", _("the next seconds (recorded from the camera)")
    LAST = "last", _("the last seconds (from the live relay's buffer)")


class Clip(models.Model):
    """Footage of one camera saved for an incident: a real MP4 file in `CLIP_STORAGE_DIR`.

    Kept until `expires_at` (capture time + the camera's effective retention days), then
    destroyed by the retention purge: the file is overwritten and removed, the row stays
    (with `destroyed_at`) so the ledger keeps pointing at what existed. `legal_hold`
    exempts a clip from the purge; setting or clearing it needs a reason and is audited
    (`cameras.clips`).
    """

    camera = models.ForeignKey(
        Camera, verbose_name=_("camera"), on_delete=models.PROTECT, related_name="clips"
    )
    incident = models.ForeignKey(
        "incidents.Incident",
        verbose_name=_("incident"),
        on_delete=models.PROTECT,
        related_name="clips",
        null=True,
        blank=True,
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("saved by"),
        on_delete=models.PROTECT,
        null=True,
        related_name="+",
    )
    created_at = models.DateTimeField(_("requested at"), auto_now_add=True)
    requested_seconds = models.PositiveIntegerField(_("requested length (s)"))
    # db_default too: code of the previous release, still running during a deploy, inserts without it.
    mode = models.CharField(
        _("mode"), max_length=4, choices=ClipMode.choices, default=ClipMode.NEXT, db_default=ClipMode.NEXT
    )
    status = models.CharField(
        _("status"), max_length=12, choices=ClipStatus.choices, default=ClipStatus.PENDING
    )
    error = models.CharField(_("error"), max_length=200, blank=True)
    recording_started_at = models.DateTimeField(null=True, blank=True)
    period_start = models.DateTimeField(_("footage from"), null=True, blank=True)
    period_end = models.DateTimeField(_("footage until"), null=True, blank=True)
    file = models.CharField(
        _("file"), max_length=300, blank=True, help_text=_("Relative to CLIP_STORAGE_DIR.")
    )
    size_bytes = models.BigIntegerField(_("size (bytes)"), null=True, blank=True)
    sha256 = models.CharField(_("SHA-256"), max_length=64, blank=True)
    expires_at = models.DateTimeField(_("expires at"))
    legal_hold = models.BooleanField(_("legal hold"), default=False)
    legal_hold_reason = models.CharField(_("legal hold reason"), max_length=300, blank=True)
    legal_hold_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("legal hold by"),
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
    )
    legal_hold_at = models.DateTimeField(_("legal hold since"), null=True, blank=True)
    destroyed_at = models.DateTimeField(_("destroyed at"), null=True, blank=True)

    class Meta:
        verbose_name = _("saved clip")
        verbose_name_plural = _("saved clips")
        ordering = ["-created_at"]
        indexes = [
            # The purge's question, answered from a small index however many clips were ever kept.
            models.Index(
                fields=["expires_at"],
                name="clip_purge_due_idx",
                condition=models.Q(destroyed_at__isnull=True, legal_hold=False),
            ),
            # The sweep for clips whose recorder went away: only unfinished ones are indexed.
            models.Index(
                fields=["created_at"],
                name="clip_unfinished_idx",
                condition=models.Q(status__in=["pending", "recording"]),
            ),
        ]

    def __str__(self) -> str:
        return f"clip #{self.pk} camera {self.camera_id}"
