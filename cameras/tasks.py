"""Background jobs of the camera registry: health probes, saved clips, destroying expired ones."""

from __future__ import annotations

from celery import shared_task

from cameras.clips import clip_record, clips_fail_stalled
from cameras.health import cameras_probe_round
from cameras.retention import clips_purge_expired


@shared_task(name="cameras.tasks.probe_cameras", ignore_result=True)
def probe_cameras() -> int:
    """Beat runs this every CAMERA_PROBE_EVERY_S; returns how many statuses changed (-1: skipped)."""
    changes = cameras_probe_round()
    return -1 if changes is None else len(changes)


@shared_task(name="cameras.tasks.record_clip", ignore_result=True)
def record_clip(clip_id: int) -> str | None:
    """Takes the id and re-reads the row; a second delivery finds the clip claimed and does nothing."""
    clip = clip_record(clip_id=clip_id)
    return None if clip is None else clip.status


@shared_task(name="cameras.tasks.purge_footage", ignore_result=True)
def purge_footage() -> int:
    """Beat runs this periodically; SKIP LOCKED claims make overlapping runs harmless.

    It also closes "last N seconds" clips a vanished relay process left unfinished.
    """
    clips_fail_stalled()
    return clips_purge_expired().destroyed
