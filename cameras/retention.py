"""Retention: expired clips are destroyed irrecoverably, and the destruction is on the ledger.

One service (`clips_purge_expired`) serves the Celery beat task and `purge_footage`.
Work is claimed in batches with `UPDATE … WHERE id IN (SELECT … FOR UPDATE SKIP
LOCKED)`: two workers (or a worker and an admin running the command) take disjoint
clips, and a clip already destroyed is never taken again, so running it twice is
harmless.

Where a batch's time goes (1,000 clips, measured with bench/retention.py): removing the
files (freeing their blocks) and writing 1,000 ledger entries cost about the same, and
neither waits on the other, so they run side by side — the files on a few threads, the
entries on the caller's — and the batch commits when both are done.
"""

from __future__ import annotations

import ctypes
import datetime as dt
import logging
import os
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db import connection, transaction
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


@dataclass
class PurgeResult:
    destroyed: int = 0
    files_removed: int = 0
    clip_ids: list[int] = field(default_factory=list)  # only the first few, for messages


class DueClip(NamedTuple):
    """What a destruction needs from a clip row: plain values, no model instance per row."""

    pk: int
    camera_id: int
    incident_id: int | None
    file: str
    sha256: str
    period_start: dt.datetime | None
    period_end: dt.datetime | None
    expires_at: dt.datetime


def clips_purge_due(*, now: dt.datetime | None = None) -> QuerySet[Clip]:
    """Clips past their expiry, not on legal hold and not yet destroyed (uses the partial index)."""
    return Clip.objects.filter(
        expires_at__lte=now or timezone.now(), legal_hold=False, destroyed_at__isnull=True
    ).order_by("expires_at", "pk")


# One statement claims a batch and marks it: rows another purge (or a legal-hold change,
# which locks its clip) holds are skipped, not waited for. The mark becomes visible only
# when the batch commits, and the batch commits only after its files are gone.
CLAIM_SQL = """
UPDATE {table} SET destroyed_at = %s, status = %s
WHERE id IN (
    SELECT id FROM {table}
    WHERE expires_at <= %s AND legal_hold = false AND destroyed_at IS NULL
    ORDER BY expires_at, id
    LIMIT %s
    FOR UPDATE SKIP LOCKED
)
RETURNING id, camera_id, incident_id, file, sha256, period_start, period_end, expires_at
"""


def clips_claim_due(*, now: dt.datetime, limit: int) -> list[DueClip]:
    """Claim and mark up to `limit` due clips in the caller's transaction, oldest expiry first."""
    with connection.cursor() as cursor:
        cursor.execute(
            CLAIM_SQL.format(table=connection.ops.quote_name(Clip._meta.db_table)),
            [timezone.now(), ClipStatus.DESTROYED, now, limit],
        )
        rows = [DueClip(*row) for row in cursor.fetchall()]
    return sorted(rows, key=lambda clip: (clip.expires_at, clip.pk))


def clips_purge_expired(*, now: dt.datetime | None = None, batch_size: int = 1000) -> PurgeResult:
    """Destroy every clip due now: overwrite and remove its file, mark the row, audit clip.destroyed.

    Each batch is one transaction, committed only once its files are gone: if it fails,
    the rows are found again by the next run, their files already gone, and the job is
    finished then; no commit can ever say "destroyed" while footage is still on disk.
    """
    now = now or timezone.now()
    result = PurgeResult()
    root = Path(os.path.abspath(settings.CLIP_STORAGE_DIR))
    # A runner for each batch's file work, and the threads that work shares out.
    with ThreadPoolExecutor(max_workers=1) as runner, ThreadPoolExecutor(max_workers=FILE_THREADS) as pool:
        while True:
            with transaction.atomic():
                batch = clips_claim_due(now=now, limit=batch_size)
                if not batch:
                    return result
                paths = [path for path in (clip_file_path(clip, root) for clip in batch) if path is not None]
                removing = runner.submit(files_destroy, paths, root=root, pool=pool)
                audit_record_many(pending=[destruction_entry(clip) for clip in batch])
                result.files_removed += removing.result()  # raises (and rolls back) if removal failed
            result.destroyed += len(batch)
            result.clip_ids.extend(clip.pk for clip in batch[: max(0, 20 - len(result.clip_ids))])
            log.info("retention: destroyed %s clips", len(batch))


def destruction_entry(clip: DueClip) -> PendingEntry:
    details = clip_audit_details(
        clip, reason="retention period ended", expires_at=clip.expires_at.isoformat()
    )
    return PendingEntry(
        action="clip.destroyed", actor="system", object_type="clip", object_id=clip.pk, details=details
    )


def files_destroy(paths: list[Path], *, root: Path, pool: ThreadPoolExecutor) -> int:
    """Overwrite every file, flush the zeros to disk once, then remove them; how many there were.

    The file-system calls are shared out to the pool's threads in slices (one task per
    thread, not per file: a task costs more than a 2 KB overwrite): they wait on the
    disk, not on Python.
    """
    overwritten = [path for part in in_slices(pool, overwrite_all, paths) for path in part]
    if settings.CLIP_PURGE_FSYNC and overwritten:
        storage_flush(root)  # the zeros reach the disk before the names go
    in_slices(pool, remove_all, overwritten)
    return len(overwritten)


def in_slices(
    pool: ThreadPoolExecutor, work: Callable[[list[Path]], list[Path]], paths: list[Path]
) -> list[list[Path]]:
    slices = [paths[n::FILE_THREADS] for n in range(FILE_THREADS) if paths[n::FILE_THREADS]]
    return list(pool.map(work, slices))


def overwrite_all(paths: list[Path]) -> list[Path]:
    return [path for path in paths if file_overwrite(path)]


def remove_all(paths: list[Path]) -> list[Path]:
    for path in paths:
        path.unlink(missing_ok=True)
    return paths


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


def _libc_syncfs() -> Callable[[int], int] | None:
    try:
        return ctypes.CDLL(None, use_errno=True).syncfs
    except (OSError, AttributeError):  # not Linux/glibc
        return None


_SYNCFS = _libc_syncfs()


def storage_flush(root: Path) -> None:
    """Write the overwrites out: only the storage's file system (Linux syncfs), else every one.

    `os.sync()` would also flush whatever else the host has pending — PostgreSQL's
    data files among them when they share the machine — on every batch.
    """
    if _SYNCFS is not None:
        descriptor = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
        try:
            if _SYNCFS(descriptor) == 0:
                return
        finally:
            os.close(descriptor)
    os.sync()


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
