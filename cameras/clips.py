"""Saved clips: an operator keeps the next N seconds, or the last N seconds, of a camera.

"Next" (`clip_request`, mode "next"): the request only writes a pending row; a Celery
task (`clip_record`) then opens the camera's RTSP stream itself, remuxes N seconds (no
decoding) into a plain MP4 with `faststart` (the index up front, so players start at
once), stores it under `CLIP_STORAGE_DIR`, and records its SHA-256.

"Last" (mode "last"): the footage is already in memory, in the relay of whichever Daphne
process relays the camera (`cameras/recent.py`). The request asks for it through the
channel layer (`cameras/relay_control.py`) and waits briefly until a relay has taken the
clip; that relay writes the file and finishes the clip the same way (`clip_finish`).
With no relay holding the camera (nobody watching it, not preloaded) the request is
refused with that reason rather than silently saving other footage: the operator can
ask for the next N seconds instead.

Every save, download and legal-hold change is audited in the same transaction as the
change itself.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import os
import re
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import av
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from audit.services import audit_record
from cameras.access import camera_viewable_by
from cameras.models import Camera, Clip, ClipMode, ClipStatus, StaffRole
from cameras.recent import RecentFootage, footage_write_mp4
from cameras.relay import RTSP_OPTIONS, describe, relay_live_camera_ids
from incidents.models import OPEN_STATUSES, Incident
from incidents.selectors import staff_of, watched_center_ids

if TYPE_CHECKING:
    from partners.models import Share

log = logging.getLogger(__name__)

# Seconds to wait for the first keyframe (and the RTSP handshake) on top of the length asked.
CAPTURE_GRACE_S = 15.0
# A clip still "recording" this long after its length is taken to be orphaned by a dead worker.
STALE_RECORDING_S = 120


class ClipError(Exception):
    """A clip request or action that cannot be done; the message is shown to the user."""


class ClipNotAllowed(ClipError):
    pass


class ClipNotBuffered(ClipError):
    """ "The last N seconds" of a camera no relay holds (nobody watching it): nothing to save."""


# -- files -------------------------------------------------------------------------


class ClipFacts(Protocol):
    """What a clip's file path and audit details are made from (a Clip, or a purge's plain row)."""

    @property
    def camera_id(self) -> int: ...
    @property
    def incident_id(self) -> int | None: ...
    @property
    def file(self) -> str: ...
    @property
    def sha256(self) -> str: ...
    @property
    def period_start(self) -> dt.datetime | None: ...
    @property
    def period_end(self) -> dt.datetime | None: ...


def clip_storage_dir() -> Path:
    return Path(settings.CLIP_STORAGE_DIR)


def clip_file_path(clip: ClipFacts, root: Path | None = None) -> Path | None:
    """The clip's file, only if it lies inside the storage directory (never a path from elsewhere).

    Checked lexically (no file-system calls: the purge asks this 100,000 times); the
    final component is opened with O_NOFOLLOW where it matters.
    """
    if not clip.file:
        return None
    root = root or Path(os.path.abspath(clip_storage_dir()))
    path = Path(os.path.normpath(root / clip.file))
    return path if path.is_relative_to(root) and path != root else None


def clip_relative_name(clip: Clip, captured_at: dt.datetime) -> str:
    local = timezone.localtime(captured_at)
    code = re.sub(r"[^A-Za-z0-9_-]+", "_", clip.camera.code)[:40] or "camera"
    return f"{local:%Y/%m/%d}/clip-{clip.pk}-{code}-{local:%Y%m%dT%H%M%S}.mp4"


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# -- capture -----------------------------------------------------------------------


@dataclass(frozen=True)
class Captured:
    started_at: dt.datetime
    duration_s: float
    frames: int


def capture_next_seconds(*, url: str, seconds: float, path: Path) -> Captured:
    """Remux `seconds` of the camera's video, from its next keyframe, into an MP4 at `path`.

    Timestamps are rebased to start at 0 and kept strictly increasing (the first RTSP
    packets often carry none). Stops at the asked length of *video*, or when the wall
    clock says the camera is stalling.
    """
    source = av.open(url, options=RTSP_OPTIONS)  # FFmpeg's own socket timeout (5 s) bounds every wait
    try:
        stream = source.streams.video[0]
        time_base = stream.time_base or Fraction(1, 90000)
        rate = stream.average_rate or stream.guessed_rate or 25
        frame_ticks = max(1, round(1 / (Fraction(rate) * time_base)))
        limit_ticks = round(seconds / time_base)
        deadline = time.monotonic() + seconds + CAPTURE_GRACE_S
        with av.open(str(path), mode="w", format="mp4", options={"movflags": "+faststart"}) as output:
            target = output.add_stream_from_template(stream)
            started_at: dt.datetime | None = None
            first_dts: int | None = None
            last_dts = -frame_ticks
            frames = 0
            for packet in source.demux(stream):
                if time.monotonic() > deadline:
                    break
                if not packet.size or (started_at is None and not packet.is_keyframe):
                    continue  # nothing decodes before the first keyframe
                if started_at is None:
                    started_at = timezone.now()
                dts = packet.dts if packet.dts is not None else packet.pts
                if first_dts is None and dts is not None:
                    first_dts = dts - (last_dts + frame_ticks)
                out_dts = last_dts + frame_ticks if dts is None or first_dts is None else dts - first_dts
                out_dts = max(out_dts, last_dts + 1)
                if out_dts >= limit_ticks:
                    break
                offset = packet.pts - packet.dts if packet.pts is not None and packet.dts is not None else 0
                packet.dts, packet.pts = out_dts, out_dts + max(0, offset)
                packet.stream = target
                output.mux(packet)
                last_dts = out_dts
                frames += 1
    finally:
        source.close()
    if started_at is None or frames == 0:
        raise ClipError("no video arrived from the camera")
    return Captured(started_at, float((last_dts + frame_ticks) * time_base), frames)


# -- request and record ------------------------------------------------------------


def clip_seconds_limit(mode: str) -> int:
    """The longest clip of a mode: "last" is bounded by what the relays keep."""
    if mode == ClipMode.LAST:
        return min(int(settings.CLIP_MAX_SECONDS), int(float(settings.RELAY_BUFFER_SECONDS)))
    return int(settings.CLIP_MAX_SECONDS)


def clip_request(
    *, user: AbstractBaseUser, incident_id: int, camera_id: int, seconds: int, mode: str = ClipMode.NEXT
) -> Clip:
    """Ask for the next (or the last) `seconds` of a camera for an open incident of the user's centre.

    "next": writes a pending clip and, after commit, queues the recording task.
    "last": writes a pending clip, then (in autocommit, so the relays can see the row)
    asks the relays for it and returns once one has taken it; ClipNotBuffered if none
    holds the camera.
    """
    if mode not in ClipMode.values:
        raise ClipError("mode must be 'next' or 'last'")
    limit = clip_seconds_limit(mode)
    if limit < 1:
        raise ClipNotBuffered("this system keeps no recent video (RELAY_BUFFER_SECONDS is 0)")
    if not 1 <= seconds <= limit:
        raise ClipError(f"seconds must be between 1 and {limit}")
    centers = watched_center_ids(user)
    if centers == []:
        raise ClipNotAllowed("only operators, supervisors and administrators save clips")
    with transaction.atomic():
        incident = Incident.objects.filter(pk=incident_id).first()
        if incident is None or (centers is not None and incident.center_id not in centers):
            raise ClipNotAllowed("no such incident at your centre")
        if incident.status not in OPEN_STATUSES:
            raise ClipError("the incident is closed")
        camera = Camera.objects.select_related("center").filter(pk=camera_id).exclude(stream_url="").first()
        if camera is None or not camera_viewable_by(user, camera):
            raise ClipNotAllowed("no such camera at your centre")
        if mode == ClipMode.LAST and not relay_live_camera_ids([camera.pk]):
            raise ClipNotBuffered(not_buffered_reason(camera))
        clip = Clip.objects.create(
            camera=camera,
            incident=incident,
            created_by_id=user.pk,
            requested_seconds=seconds,
            mode=mode,
            # Provisional: set again from the real capture time once recorded.
            expires_at=timezone.now() + dt.timedelta(days=camera.effective_retention_days),
        )
        clip_id = clip.pk
        if mode == ClipMode.NEXT:
            transaction.on_commit(lambda: clip_record_enqueue(clip_id))
    if mode == ClipMode.LAST:
        return clip_last_dispatch(clip=clip)
    return clip


def not_buffered_reason(camera: Camera) -> str:
    return (
        f"no video relay has camera {camera.code} open right now, so its last seconds were not kept "
        "(they are only while someone watches it, or it is preloaded); save the next seconds instead"
    )


def clip_last_dispatch(*, clip: Clip) -> Clip:
    """Ask the relays holding the clip's camera for it; wait until one has taken it, else fail it."""
    from cameras.relay_control import ClipLastMessage, camera_group

    message: ClipLastMessage = {
        "type": "clip.last",
        "clip_id": clip.pk,
        "camera_id": clip.camera_id,
        "seconds": clip.requested_seconds,
    }
    try:
        async_to_sync(get_channel_layer().group_send)(camera_group(clip.camera_id), message)
    except Exception as exc:  # Redis away: nobody can be asked
        clip_fail(clip=clip, reason="the video relays could not be reached", only_pending=True)
        raise ClipNotBuffered("the video relays could not be reached; save the next seconds instead") from exc
    deadline = time.monotonic() + float(settings.CLIP_LAST_ANSWER_S)
    while time.monotonic() < deadline:
        if Clip.objects.filter(pk=clip.pk).exclude(status=ClipStatus.PENDING).exists():
            return Clip.objects.get(pk=clip.pk)
        time.sleep(0.05)
    # Conditional: a relay that takes it at this very moment wins, and the clip is kept.
    if clip_fail(clip=clip, reason="no video relay answered", only_pending=True):
        raise ClipNotBuffered(not_buffered_reason(clip.camera))
    return Clip.objects.get(pk=clip.pk)


def clip_record_enqueue(clip_id: int) -> None:
    from cameras.tasks import record_clip

    record_clip.delay(clip_id)


def clip_claim(*, clip_id: int, mode: str = ClipMode.NEXT) -> bool:
    """Take the clip for recording: one worker (or relay) only, even if asked twice."""
    now = timezone.now()
    stale = now - dt.timedelta(seconds=int(settings.CLIP_MAX_SECONDS) + CAPTURE_GRACE_S + STALE_RECORDING_S)
    claimable = Q(status=ClipStatus.PENDING)
    if mode == ClipMode.NEXT:  # a redelivered task takes over from a worker that died
        claimable |= Q(status=ClipStatus.RECORDING, recording_started_at__lt=stale)
    return bool(
        Clip.objects.filter(claimable, pk=clip_id, mode=mode).update(
            status=ClipStatus.RECORDING, recording_started_at=now
        )
    )


def clip_fail(*, clip: Clip, reason: str, only_pending: bool = False) -> bool:
    """Mark the clip failed with the reason shown to the operator; whether it was still open."""
    clips = Clip.objects.filter(
        pk=clip.pk, status=ClipStatus.PENDING if only_pending else ClipStatus.RECORDING
    )
    return bool(clips.update(status=ClipStatus.FAILED, error=reason[:200]))


def clip_record(*, clip_id: int) -> Clip | None:
    """Record a claimed clip to its file and finish it (ready, with hash and expiry) or fail it."""
    if not clip_claim(clip_id=clip_id):
        return Clip.objects.filter(pk=clip_id).first()  # done, failed, recorded elsewhere or not ours
    clip = Clip.objects.select_related("camera__center").get(pk=clip_id)
    partial = clip_partial_path(clip)
    try:
        captured = capture_next_seconds(
            url=clip.camera.stream_url, seconds=clip.requested_seconds, path=partial
        )
    except Exception as exc:  # the camera's fault, not ours: the clip says why, the worker lives on
        partial.unlink(missing_ok=True)
        reason = str(exc) if isinstance(exc, ClipError) else f"camera stream failed: {describe(exc)}"
        log.warning("clip %s of camera %s failed: %s", clip.pk, clip.camera_id, reason)
        clip_fail(clip=clip, reason=reason)
        return Clip.objects.get(pk=clip.pk)
    return clip_finish(clip=clip, partial=partial, captured=captured)


def clip_record_recent(*, clip_id: int, footage: RecentFootage) -> Clip:
    """Write a claimed "last N seconds" clip from a relay's buffer and finish it, or fail it."""
    clip = Clip.objects.select_related("camera__center", "created_by").get(pk=clip_id)
    partial = clip_partial_path(clip)
    try:
        written = footage_write_mp4(footage=footage, path=partial)
        if written.frames == 0:
            raise ClipError("no video in the relay's buffer")
    except Exception as exc:
        partial.unlink(missing_ok=True)
        reason = str(exc) if isinstance(exc, ClipError) else f"writing the clip failed: {describe(exc)}"
        log.warning("clip %s of camera %s failed: %s", clip.pk, clip.camera_id, reason)
        clip_fail(clip=clip, reason=reason)
        return Clip.objects.get(pk=clip.pk)
    captured = Captured(footage.starts_at, written.duration_s or footage.duration_s, written.frames)
    return clip_finish(clip=clip, partial=partial, captured=captured)


def clip_partial_path(clip: Clip) -> Path:
    partial = clip_storage_dir() / "partial" / f"clip-{clip.pk}.mp4"
    partial.parent.mkdir(parents=True, exist_ok=True)
    return partial


def clips_fail_stalled(*, now: dt.datetime | None = None) -> int:
    """Fail "last N seconds" clips whose relay process went away before finishing them.

    Such a clip is written in well under a second once taken, and nobody asks again, so
    one still unfinished after STALE_RECORDING_S never will be. ("Next" clips are taken
    over by the task's redelivery instead; see `clip_claim`.)
    """
    stale = (now or timezone.now()) - dt.timedelta(seconds=STALE_RECORDING_S)
    return Clip.objects.filter(
        mode=ClipMode.LAST,
        status__in=[ClipStatus.PENDING, ClipStatus.RECORDING],
        created_at__lt=stale,
    ).update(status=ClipStatus.FAILED, error="the relay saving it stopped")


def clip_finish(*, clip: Clip, partial: Path, captured: Captured) -> Clip:
    name = clip_relative_name(clip, captured.started_at)
    final = clip_storage_dir() / name
    final.parent.mkdir(parents=True, exist_ok=True)
    with partial.open("rb") as handle:
        os.fsync(handle.fileno())  # on disk before the row says it exists
    os.replace(partial, final)
    clip.file = name
    clip.size_bytes = final.stat().st_size
    clip.sha256 = file_sha256(final)
    clip.period_start = captured.started_at
    clip.period_end = captured.started_at + dt.timedelta(seconds=captured.duration_s)
    clip.expires_at = captured.started_at + dt.timedelta(days=clip.camera.effective_retention_days)
    clip.status = ClipStatus.READY
    with transaction.atomic():
        clip.save(
            update_fields=[
                "file",
                "size_bytes",
                "sha256",
                "period_start",
                "period_end",
                "expires_at",
                "status",
            ]
        )
        username = clip.created_by.get_username() if clip.created_by else "system"
        audit_record(
            action="clip.saved",
            actor=f"user:{username}",
            user_id=clip.created_by_id,
            object_type="clip",
            object_id=clip.pk,
            details=clip_audit_details(clip, reason="saved for incident", mode=clip.mode),
        )
    return clip


def clip_audit_details(clip: ClipFacts, **extra: Any) -> dict[str, Any]:
    """The details every clip.* audit entry carries (shared vocabulary)."""
    return {
        "camera_id": clip.camera_id,
        "incident_id": clip.incident_id,
        "file": clip.file,
        "sha256": clip.sha256,
        "period_start": clip.period_start.isoformat() if clip.period_start else None,
        "period_end": clip.period_end.isoformat() if clip.period_end else None,
        **extra,
    }


# -- download ----------------------------------------------------------------------


def clip_downloadable_by(user: AbstractBaseUser, clip: Clip) -> bool:
    """Operators of the camera's centre, administrators, and privacy officers (inspections, requests)."""
    if camera_viewable_by(user, clip.camera):
        return True
    staff = staff_of(user)
    return staff is not None and staff.role == StaffRole.PRIVACY_OFFICER


def clip_download_start(
    *, clip: Clip, user: AbstractBaseUser | None = None, share: Share | None = None, reason: str = ""
) -> Path:
    """The file to send for an allowed download, after the download is audited (clip.downloaded).

    Through a share (`partners.share_clips` decided it may), the entry names the partner
    and the share's legal basis: the ledger shows it as a provision (제공) to the partner.
    """
    if clip.destroyed_at is not None:
        raise ClipError("the clip was destroyed at the end of its retention period")
    path = clip_file_path(clip)
    if clip.status != ClipStatus.READY or path is None or not path.is_file():
        raise ClipError("the clip is not ready")
    details = clip_audit_details(clip, reason=reason)
    with transaction.atomic():
        if share is not None:
            details.update(
                partner=share.partner.slug,
                share_id=share.pk,
                event_type=share.event_type,
                legal_basis=share.legal_basis,
                purpose=share.purpose,
            )
            audit_record(
                action="clip.downloaded",
                actor=f"partner:{share.partner.slug}",
                partner_id=share.partner.pk,
                object_type="clip",
                object_id=clip.pk,
                details=details,
            )
        elif user is not None:
            audit_record(
                action="clip.downloaded",
                actor=f"user:{user.get_username()}",
                user_id=user.pk,
                object_type="clip",
                object_id=clip.pk,
                details=details,
            )
        else:
            raise ClipError("a download needs a user or a share")
    return path


# -- legal hold --------------------------------------------------------------------


def clip_legal_hold_set(*, clip_id: int, user: AbstractBaseUser, reason: str) -> Clip:
    """Exempt a clip from the retention purge (an investigation, a court order). Needs a reason."""
    return _legal_hold_change(clip_id=clip_id, user=user, reason=reason, hold=True)


def clip_legal_hold_clear(*, clip_id: int, user: AbstractBaseUser, reason: str) -> Clip:
    """Return a clip to the normal retention: it is purged at its expiry (or the next purge if past)."""
    return _legal_hold_change(clip_id=clip_id, user=user, reason=reason, hold=False)


def _legal_hold_change(*, clip_id: int, user: AbstractBaseUser, reason: str, hold: bool) -> Clip:
    reason = reason.strip()
    if not reason:
        raise ClipError("a reason is required to set or clear a legal hold")
    with transaction.atomic():
        # Locked: the purge (skip_locked) passes over a clip whose hold is being decided.
        clip = Clip.objects.select_for_update().filter(pk=clip_id).first()
        if clip is None:
            raise ClipError("no such clip")
        if clip.destroyed_at is not None:
            raise ClipError("the clip was already destroyed")
        if clip.legal_hold == hold:
            raise ClipError("the clip is already on legal hold" if hold else "the clip is not on legal hold")
        clip.legal_hold = hold
        clip.legal_hold_reason = reason[:300]
        clip.legal_hold_by_id = user.pk
        clip.legal_hold_at = timezone.now()
        clip.save(update_fields=["legal_hold", "legal_hold_reason", "legal_hold_by", "legal_hold_at"])
        audit_record(
            action="clip.legal_hold_set" if hold else "clip.legal_hold_cleared",
            actor=f"user:{user.get_username()}",
            user_id=user.pk,
            object_type="clip",
            object_id=clip.pk,
            details=clip_audit_details(clip, reason=reason),
        )
    return clip
