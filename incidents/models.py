"""Incidents: an emergency reported by a partner, routed to a centre, worked by operators."""

from __future__ import annotations

from django.conf import settings
from django.contrib.gis.db import models
from django.core.validators import MaxValueValidator, MinValueValidator
from django.utils.translation import gettext_lazy as _

from cameras.models import Camera, Center
from incidents.catalogue import EVENT_TYPE_CHOICES
from partners.models import Partner


class IncidentStatus(models.TextChoices):
    NEW = "new", _("new")
    ACKNOWLEDGED = "acknowledged", _("acknowledged")
    DISPATCHED = "dispatched", _("dispatch requested")
    CLOSED = "closed", _("closed")
    CANCELLED = "cancelled", _("cancelled by partner")


OPEN_STATUSES = (IncidentStatus.NEW, IncidentStatus.ACKNOWLEDGED, IncidentStatus.DISPATCHED)


class Incident(models.Model):
    """One reported emergency.

    (partner, external_id) is unique: a partner re-sending the same event gets the same
    incident, and two copies arriving at the same instant cannot both insert.
    """

    partner = models.ForeignKey(Partner, on_delete=models.PROTECT, related_name="incidents")
    external_id = models.CharField(_("external id"), max_length=128)
    type = models.CharField(_("type"), max_length=40, choices=EVENT_TYPE_CHOICES)
    priority = models.PositiveSmallIntegerField(
        _("priority"), validators=[MinValueValidator(1), MaxValueValidator(5)]
    )
    status = models.CharField(
        _("status"), max_length=20, choices=IncidentStatus.choices, default=IncidentStatus.NEW
    )
    center = models.ForeignKey(
        Center, on_delete=models.PROTECT, related_name="incidents", null=True, blank=True
    )
    outside_jurisdiction = models.BooleanField(_("outside every jurisdiction"), default=False)
    location = models.PointField(_("location"), geography=True, srid=4326)
    accuracy_m = models.FloatField(_("accuracy (m)"), null=True, blank=True)
    address = models.CharField(_("address"), max_length=300, blank=True)
    summary = models.TextField(_("summary"), blank=True)
    subject = models.JSONField(_("subject"), default=dict, blank=True)
    occurred_at = models.DateTimeField(_("occurred at"))
    received_at = models.DateTimeField(_("received at"), auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    acknowledged_at = models.DateTimeField(_("acknowledged at"), null=True, blank=True)
    escalated_at = models.DateTimeField(_("escalated at"), null=True, blank=True)
    closed_at = models.DateTimeField(_("closed at"), null=True, blank=True)
    outcome = models.CharField(_("outcome"), max_length=30, blank=True)
    cameras: models.ManyToManyField[Camera, IncidentCamera] = models.ManyToManyField(
        Camera, through="IncidentCamera", related_name="incidents"
    )

    class Meta:
        verbose_name = _("incident")
        verbose_name_plural = _("incidents")
        ordering = ["priority", "received_at"]
        constraints = [
            models.UniqueConstraint(fields=["partner", "external_id"], name="incident_external_id_once")
        ]
        indexes = [
            models.Index(fields=["center", "status", "priority", "received_at"]),
            # The queue every dashboard's snapshot reads (incidents_open_at): open ones of
            # a centre in queue order, read off the index instead of sorting them all.
            models.Index(
                fields=["center", "priority", "received_at"],
                condition=models.Q(status__in=OPEN_STATUSES),
                name="incident_open_queue",
            ),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.type} ({self.status})"


class IncidentCamera(models.Model):
    """A camera chosen for an incident, ranked by distance; re-ranked when the subject moves."""

    incident = models.ForeignKey(Incident, on_delete=models.CASCADE, related_name="ranked_cameras")
    camera = models.ForeignKey(Camera, on_delete=models.CASCADE, related_name="+")
    rank = models.PositiveSmallIntegerField()
    distance_m = models.FloatField()

    class Meta:
        ordering = ["incident", "rank"]
        constraints = [models.UniqueConstraint(fields=["incident", "camera"], name="incident_camera_once")]


class LocationFix(models.Model):
    """A position of a moving subject (an SOS caller, an ankle monitor), in arrival order."""

    incident = models.ForeignKey(Incident, on_delete=models.CASCADE, related_name="fixes")
    location = models.PointField(geography=True, srid=4326)
    accuracy_m = models.FloatField(null=True, blank=True)
    observed_at = models.DateTimeField()
    received_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["incident", "observed_at", "pk"]


class TimelineKind(models.TextChoices):
    RECEIVED = "received", _("received")
    LOCATION = "location", _("location update")
    CANCELLED = "cancelled", _("cancelled by partner")
    ACKNOWLEDGED = "acknowledged", _("acknowledged")
    ASSIGNED = "assigned", _("assigned")
    NOTE = "note", _("note")
    DISPATCH = "dispatch", _("dispatch requested")
    CLOSED = "closed", _("closed")
    ESCALATED = "escalated", _("escalated")
    SHARE = "share", _("video share")


class TimelineEntry(models.Model):
    """Something that happened to an incident. `partner_visible` entries appear in the API."""

    incident = models.ForeignKey(Incident, on_delete=models.CASCADE, related_name="timeline")
    at = models.DateTimeField(auto_now_add=True)
    kind = models.CharField(max_length=20, choices=TimelineKind.choices)
    actor = models.CharField(max_length=150, blank=True)
    text = models.TextField(blank=True)
    partner_visible = models.BooleanField(default=True)

    class Meta:
        ordering = ["incident", "at", "pk"]
