"""Retention: expired clips are destroyed irrecoverably, and the destruction is on the ledger.

One service (`clips_purge_expired`) serves the Celery beat task and `purge_footage`.
Work is claimed in batches with `SELECT … FOR UPDATE SKIP LOCKED`: two workers (or a
worker and an admin running the command) take disjoint clips, and a clip already
destroyed is never taken again, so running it twice is harmless.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from audit.services import PendingEntry, audit_record_many
from cameras.clips import clip_audit_details, clip_file_path
from cameras.models import Clip, ClipStatus
from incidents.models import OPEN_STATUSES
from incidents.selectors import watched_center_ids

log = logging.getLogger(__name__)

OVERWRITE_BLOCK = 1 << 20
FILE_THREADS = 4
# What a destruction needs from each row: loading only these keeps 100,000 rows cheap.
DESTRUCTION_FIELDS = (
    "id",
    "camera_id",
    "incident_id",
    "file",
    "sha256",
    "period_start",
    "period_end",
    "expires_at",
)


@dataclass
class PurgeResult:
    destroyed: int = 0
    files_removed: int = 0
    clip_ids: list[int] = field(default_factory=list)  # only the first few, for messages


def clips_purge_due(*, now: dt.datetime | None = None) -> QuerySet[Clip]:
    """Clips past their expiry, not on legal hold and not yet destroyed (uses the partial index)."""
    return Clip.objects.filter(
        expires_at__lte=now or timezone.now(), legal_hold=False, destroyed_at__isnull=True
    ).order_by("expires_at", "pk")


def clips_purge_expired(*, now: dt.datetime | None = None, batch_size: int = 1000) -> PurgeResult:
    """Destroy every clip due now: overwrite and remove its file, mark the row, audit clip.destroyed.

    Each batch is one transaction. A file is removed before its row is marked: if the
    transaction then fails, the next run finds the row again, its file already gone,
    and finishes the job; the reverse order could leave footage nobody knows about.
    """
    now = now or timezone.now()
    result = PurgeResult()
    while True:
        with transaction.atomic():
            due = clips_purge_due(now=now).select_for_update(skip_locked=True).only(*DESTRUCTION_FIELDS)
            batch = list(due[:batch_size])
            if not batch:
                return result
            root = Path(os.path.abspath(settings.CLIP_STORAGE_DIR))
            paths = [path for path in (clip_file_path(clip, root) for clip in batch) if path is not None]
            result.files_removed += files_destroy(paths)
            destroyed_at = timezone.now()
            Clip.objects.filter(pk__in=[clip.pk for clip in batch]).update(
                destroyed_at=destroyed_at, status=ClipStatus.DESTROYED
            )
            audit_record_many(pending=[destruction_entry(clip) for clip in batch])
        result.destroyed += len(batch)
        result.clip_ids.extend(clip.pk for clip in batch[: max(0, 20 - len(result.clip_ids))])
        log.info("retention: destroyed %s clips", len(batch))


def destruction_entry(clip: Clip) -> PendingEntry:
    details = clip_audit_details(
        clip, reason="retention period ended", expires_at=clip.expires_at.isoformat()
    )
    return PendingEntry(
        action="clip.destroyed", actor="system", object_type="clip", object_id=clip.pk, details=details
    )


def files_destroy(paths: list[Path]) -> int:
    """Overwrite every file, flush the zeros to disk once, then remove them; how many there were.

    The file-system calls run on a few threads: they wait on the disk, not on Python.
    """
    with ThreadPoolExecutor(max_workers=FILE_THREADS) as pool:
        overwritten = [
            path for path, done in zip(paths, pool.map(file_overwrite, paths), strict=True) if done
        ]
        if settings.CLIP_PURGE_FSYNC and overwritten:
            os.sync()  # the zeros reach the disk before the names go
        list(pool.map(lambda path: path.unlink(missing_ok=True), overwritten))
    return len(overwritten)


def file_overwrite(path: Path) -> bool:
    """Overwrite the file with zeros in place. False if it is not there (or is a symlink).

    The caller flushes the overwrites to disk, then removes the files. Overwriting
    defeats undelete tools on a plain disk; on SSDs and copy-on-write file systems
    only encryption of the storage volume makes old blocks unreadable, which is why
    CLIP_STORAGE_DIR belongs on an encrypted volume.
    """
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_NOFOLLOW)
    except (FileNotFoundError, OSError):
        return False
    try:
        remaining = os.fstat(descriptor).st_size
        zeros = bytes(min(remaining, OVERWRITE_BLOCK))
        while remaining > 0:
            remaining -= os.write(descriptor, zeros[: min(remaining, OVERWRITE_BLOCK)])
    finally:
        os.close(descriptor)
    return True


def clips_due_iter(*, now: dt.datetime | None = None) -> Iterator[Clip]:
    """What a purge would destroy now, streamed (for `purge_footage --dry-run`)."""
    return clips_purge_due(now=now).select_related("camera").iterator(chunk_size=2000)


def clips_due_soon(
    *, user: AbstractBaseUser | AnonymousUser, within: dt.timedelta | None = None
) -> QuerySet[Clip]:
    """Clips of open incidents at the user's centre(s) that the purge will destroy within 24 h.

    The dashboard warns about these: footage an investigation still needs may want a
    legal hold before it goes.
    """
    within = within or dt.timedelta(hours=float(settings.CLIP_DUE_WARNING_HOURS))
    centers = watched_center_ids(user)
    clips = Clip.objects.filter(
        destroyed_at__isnull=True,
        legal_hold=False,
        expires_at__lte=timezone.now() + within,
        incident__status__in=OPEN_STATUSES,
    )
    if centers is not None:
        clips = clips.filter(incident__center_id__in=centers)
    return clips.select_related("camera", "incident").order_by("expires_at")
