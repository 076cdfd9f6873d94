"""Background jobs of the camera registry."""

from __future__ import annotations

from celery import shared_task

from cameras.health import cameras_probe_round


@shared_task(name="cameras.tasks.probe_cameras", ignore_result=True)
def probe_cameras() -> int:
    """Beat runs this every CAMERA_PROBE_EVERY_S; returns how many statuses changed (-1: skipped)."""
    changes = cameras_probe_round()
    return -1 if changes is None else len(changes)
