"""Camera health: is each camera's stream up? Probed in rounds by Celery beat.

A probe opens the camera the way the relay does (RTSP over TCP through PyAV, with
timeouts) and waits for one video packet. That costs the camera a short session, but it
proves what an operator needs, that video flows: an RTSP server that still answers
OPTIONS/DESCRIBE while its encoder is hung would pass a handshake-only check, and FFmpeg
already speaks Basic and Digest authentication. A camera some relay process is
streaming live counts as online without a probe (see `relay.relay_live_camera_ids`).

Status is written with conditional UPDATEs (`… WHERE status <> 'online' RETURNING`):
only the statement that really changes a row reports it, so two workers running the
same round push each change once.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import av
from django.conf import settings
from django.core.cache import cache
from django.db import connection, transaction
from django.utils import timezone

from cameras.models import Camera, CameraStatus
from cameras.relay import describe, relay_live_camera_ids
from incidents.realtime import camera_status_publish

log = logging.getLogger(__name__)

ROUND_LOCK_KEY = "cameras:probe-round"


@dataclass(frozen=True)
class StatusChange:
    """A camera whose status a probe round changed."""

    camera_id: int
    center_id: int | None
    status: str
    last_seen_at: dt.datetime | None


def probe_options(timeout_s: float) -> dict[str, str]:
    # "timeout" is the socket I/O timeout in µs; the SDP already names codec and size.
    return {
        "rtsp_transport": "tcp",
        "timeout": str(int(timeout_s * 1_000_000)),
        "analyzeduration": "0",
        "probesize": "32",
    }


def camera_probe(*, url: str, timeout_s: float) -> bool:
    """True when the camera answers RTSP over TCP and sends a video packet within `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    try:
        with av.open(url, options=probe_options(timeout_s), timeout=(timeout_s, timeout_s)) as container:
            if not container.streams.video:
                return False
            for packet in container.demux(container.streams.video[0]):
                if packet.size:
                    return True
                if time.monotonic() > deadline:
                    break
    except Exception as exc:  # any failure of the camera is "offline"; never log the URL
        log.debug("probe failed: %s", describe(exc))
    return False


def cameras_probe(*, camera_ids: list[int] | None = None) -> list[StatusChange]:
    """Probe cameras with a stream (all, or `camera_ids`), record statuses, push the changes.

    At most `CAMERA_PROBE_CONCURRENCY` probes run at once, each bounded by
    `CAMERA_PROBE_TIMEOUT_S`: PyAV releases the GIL while it waits on the network, so
    threads are enough.
    """
    cameras = Camera.objects.exclude(stream_url="")
    if camera_ids is not None:
        cameras = cameras.filter(pk__in=camera_ids)
    targets = dict(cameras.values_list("pk", "stream_url"))
    relayed = relay_live_camera_ids(list(targets))
    to_probe = [(pk, url) for pk, url in targets.items() if pk not in relayed]
    timeout_s = float(settings.CAMERA_PROBE_TIMEOUT_S)
    online = set(relayed)
    if to_probe:
        workers = max(1, min(int(settings.CAMERA_PROBE_CONCURRENCY), len(to_probe)))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="camera-probe") as pool:
            results = pool.map(lambda target: camera_probe(url=target[1], timeout_s=timeout_s), to_probe)
            online.update(pk for (pk, _url), up in zip(to_probe, results, strict=True) if up)
    offline = set(targets) - online
    return camera_statuses_record(online_ids=sorted(online), offline_ids=sorted(offline))


def camera_statuses_record(
    *, online_ids: list[int], offline_ids: list[int], seen_at: dt.datetime | None = None
) -> list[StatusChange]:
    """Mark cameras online (seen now) or offline; push `camera.status` for the changed ones.

    Raw SQL because the ORM's update() tells how many rows changed, not which: RETURNING
    names exactly the rows this statement moved. A concurrent round blocks on the row
    lock, then re-checks `status <> …` on the new row and leaves it alone.
    """
    seen_at = seen_at or timezone.now()
    table = Camera._meta.db_table
    changes: list[StatusChange] = []
    with transaction.atomic(), connection.cursor() as cursor:
        if online_ids:
            cursor.execute(
                f"UPDATE {table} SET status = %s, last_seen_at = %s"  # noqa: S608 — table from the model
                f" WHERE id = ANY(%s) AND status <> %s RETURNING id, center_id",
                [CameraStatus.ONLINE, seen_at, online_ids, CameraStatus.ONLINE],
            )
            changes += [
                StatusChange(pk, center, CameraStatus.ONLINE, seen_at) for pk, center in cursor.fetchall()
            ]
            # Already online: only the time it was last seen moves (no push for that).
            cursor.execute(
                f"UPDATE {table} SET last_seen_at = %s"  # noqa: S608
                f" WHERE id = ANY(%s) AND (last_seen_at IS NULL OR last_seen_at < %s)",
                [seen_at, online_ids, seen_at],
            )
        if offline_ids:
            cursor.execute(
                f"UPDATE {table} SET status = %s"  # noqa: S608
                f" WHERE id = ANY(%s) AND status <> %s RETURNING id, center_id, last_seen_at",
                [CameraStatus.OFFLINE, offline_ids, CameraStatus.OFFLINE],
            )
            changes += [
                StatusChange(pk, center, CameraStatus.OFFLINE, seen) for pk, center, seen in cursor.fetchall()
            ]
        transaction.on_commit(lambda: camera_statuses_publish(changes))
    if changes:
        log.info("camera status: %s", ", ".join(f"{c.camera_id}→{c.status}" for c in changes))
    return changes


def camera_statuses_publish(changes: list[StatusChange]) -> None:
    for change in changes:
        camera_status_publish(
            camera_id=change.camera_id,
            center_id=change.center_id,
            status=change.status,
            last_seen_at=change.last_seen_at.isoformat() if change.last_seen_at else None,
        )


def cameras_probe_round() -> list[StatusChange] | None:
    """One beat-scheduled round, skipped (None) while another worker's round still runs.

    The lock only spares the cameras a second set of sessions when a round outlasts the
    interval; correctness does not depend on it (the updates are conditional). It expires
    by itself should a worker die mid-round.
    """
    ttl = max(float(settings.CAMERA_PROBE_EVERY_S), float(settings.CAMERA_PROBE_TIMEOUT_S) * 2)
    try:
        claimed = cache.add(ROUND_LOCK_KEY, 1, timeout=ttl)
    except Exception:  # Redis away: probe anyway, the updates stay correct
        claimed = True
    if not claimed:
        return None
    try:
        return cameras_probe()
    finally:
        try:
            cache.delete(ROUND_LOCK_KEY)
        except Exception:
            log.debug("could not release the probe round lock; it expires by itself")
