"""Reads about incidents for the control room."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import BooleanField, ExpressionWrapper, F, FloatField, Func, Prefetch, Q, QuerySet

from cameras.models import StaffProfile, StaffRole
from incidents.models import OPEN_STATUSES, Incident, IncidentCamera, LocationFix
from smartcity.memo import memo_set

WATCHING_ROLES = (StaffRole.OPERATOR, StaffRole.SUPERVISOR)

# Intake has just written an incident's ranked cameras (with their Camera rows) and
# needs them twice more: for the operators' push and the partner's response. Keeping
# the list on the instance saves re-reading what this very request wrote (for the
# request's duration: smartcity/memo.py).
_RANKED_IN_MEMORY = "_ranked_cameras_in_memory"


def incident_ranked_cameras_remember(*, incident: Incident, ranked: list[IncidentCamera]) -> None:
    memo_set(incident, _RANKED_IN_MEMORY, ranked)


def incident_ranked_cameras(incident: Incident) -> list[IncidentCamera]:
    """The incident's cameras, nearest first, each with its Camera loaded."""
    remembered: list[IncidentCamera] | None = getattr(incident, _RANKED_IN_MEMORY, None)
    if remembered is None and "ranked_cameras" in getattr(incident, "_prefetched_objects_cache", {}):
        remembered = list(incident.ranked_cameras.all())
    if remembered is not None:
        return sorted(remembered, key=lambda ranked: ranked.rank)
    return list(incident.ranked_cameras.select_related("camera").order_by("rank"))


def incident_ranked_camera_ids(incident: Incident, *, limit: int) -> list[int]:
    """The ids of the incident's `limit` nearest cameras; from memory right after a (re)ranking."""
    remembered: list[IncidentCamera] | None = getattr(incident, _RANKED_IN_MEMORY, None)
    if remembered is not None:
        return [ranked.camera_id for ranked in sorted(remembered, key=lambda r: r.rank)][:limit]
    return list(incident.ranked_cameras.order_by("rank").values_list("camera_id", flat=True)[:limit])


def incident_track(incident: Incident) -> list[LocationFix]:
    """The subject's fixes in the order they were observed."""
    if "fixes" in getattr(incident, "_prefetched_objects_cache", {}):
        return sorted(incident.fixes.all(), key=lambda fix: (fix.observed_at, fix.pk))
    return list(incident.fixes.order_by("observed_at", "pk"))


def staff_of(user: AbstractBaseUser | AnonymousUser) -> StaffProfile | None:
    if not user.is_authenticated:
        return None
    return StaffProfile.objects.select_related("center").filter(user_id=user.pk).first()


def watched_center_ids(user: AbstractBaseUser | AnonymousUser) -> list[int] | None:
    """The centres whose incidents `user` may see: None means every centre (administrators).

    An operator or supervisor sees their own centre; anyone else sees none.
    """
    if not user.is_authenticated:
        return []
    if getattr(user, "is_superuser", False):
        return None
    staff = staff_of(user)
    if staff is None:
        return []
    if staff.role == StaffRole.ADMIN:
        return None
    if staff.role in WATCHING_ROLES and staff.center_id is not None:
        return [staff.center_id]
    return []


def incidents_visible(user: AbstractBaseUser | AnonymousUser) -> QuerySet[Incident]:
    centers = watched_center_ids(user)
    queryset = Incident.objects.select_related("partner", "acknowledged_by", "assignee")
    return queryset if centers is None else queryset.filter(center_id__in=centers)


def incidents_open(user: AbstractBaseUser | AnonymousUser) -> QuerySet[Incident]:
    """The live queue: open incidents, most urgent first, then oldest first.

    Cameras and tracks come prefetched: a dashboard's snapshot of 200 incidents is
    three queries, not two per incident.
    """
    return incidents_open_at(watched_center_ids(user))


def incidents_open_at(centers: list[int] | None) -> QuerySet[Incident]:
    """`incidents_open` for whoever watches these centres (None: every centre)."""
    queryset = Incident.objects.select_related("partner", "acknowledged_by", "assignee")
    if centers is not None:
        queryset = queryset.filter(center_id__in=centers)
    return (
        queryset.filter(status__in=OPEN_STATUSES)
        .order_by("priority", "received_at")
        .prefetch_related(Prefetch("ranked_cameras", queryset=ranked_cameras_shown()), "fixes")
    )


def ranked_cameras_shown() -> QuerySet[IncidentCamera]:
    """Ranked cameras with what a dashboard shows of them: the position as two numbers
    (no GEOS point to build per camera) and whether a stream is set (not the URL).
    A snapshot of 200 incidents holds 1,600 of these."""
    return (
        IncidentCamera.objects.select_related("camera")
        .defer("camera__location", "camera__stream_url")
        .annotate(
            camera_lat=Func(
                F("camera__location"), template="ST_Y(%(expressions)s::geometry)", output_field=FloatField()
            ),
            camera_lon=Func(
                F("camera__location"), template="ST_X(%(expressions)s::geometry)", output_field=FloatField()
            ),
            camera_stream_present=ExpressionWrapper(~Q(camera__stream_url=""), output_field=BooleanField()),
        )
    )
