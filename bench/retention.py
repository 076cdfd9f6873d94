"""Retention and ledger at scale: purging 100,000 expired clips, verifying 1,000,000 audit entries.

Purge: 100,000 clip rows, each with a small real file, all expired; `clips_purge_expired`
(the beat task's service) overwrites and removes every file, marks every row and writes
100,000 chained `clip.destroyed` entries. Target ≤ 60 s, with the process's memory flat
(peak RSS growth is reported). Then the steps of a batch of 1,000 timed one by one
(claim and mark, overwrite, flush, remove, ledger entries, commit): where the time goes.

Verify: `audit_chain_verify` over the whole chain, topped up to at least 1,000,000
entries; rows per second and RSS growth. The audit table is append-only, so the chain
is built once and reused by later runs.
"""

from __future__ import annotations

import datetime as dt
import os
import statistics
import tempfile
import threading
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from audit.models import AuditEntry
from audit.services import PendingEntry, audit_record_many
from audit.verify import audit_chain_verify
from bench.common import Figure, Target, report, report_figure
from cameras.clips import clip_file_path
from cameras.models import Camera, Clip, ClipStatus
from cameras.retention import (
    FILE_THREADS,
    clips_claim_due,
    clips_purge_expired,
    destruction_entry,
    in_slices,
    overwrite_all,
    remove_all,
    storage_flush,
)
from cameras.selectors import make_point

N_CLIPS = int(os.environ.get("BENCH_CLIPS", "100000"))
STEP_BATCHES = 10
N_ENTRIES = int(os.environ.get("BENCH_AUDIT_ENTRIES", "1000000"))
FILE_BYTES = 2048
CAMERA_CODE = "RETENTION-BENCH"  # not "BENCH-…": that prefix is the spatial section's million


def run() -> list[Figure]:
    figures = bench_purge()
    figures += bench_purge_steps()
    figures += bench_verify()
    for figure in figures:
        report_figure(figure)
    return figures


class RssSampler:
    """Peak resident memory of this process while a block runs, sampled every 50 ms."""

    def __init__(self) -> None:
        self.start = self.peak = rss_bytes()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _sample(self) -> None:
        while not self._stop.wait(0.05):
            self.peak = max(self.peak, rss_bytes())

    @property
    def growth_mb(self) -> float:
        return (self.peak - self.start) / 2**20


def rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


# --- purge -----------------------------------------------------------------------------


def bench_purge() -> list[Figure]:
    with tempfile.TemporaryDirectory(prefix="bench-clips-") as storage:
        settings.CLIP_STORAGE_DIR = Path(storage)
        made = time.perf_counter()
        make_expired_clips(Path(storage), N_CLIPS)
        report("clips prepared", f"{N_CLIPS:,} rows and files in {time.perf_counter() - made:.0f} s")
        with RssSampler() as memory:
            started = time.perf_counter()
            result = clips_purge_expired()
            elapsed = time.perf_counter() - started
        left = sum(1 for _ in Path(storage).rglob("*.mp4"))
    report(
        "destroyed / files removed / files left", f"{result.destroyed:,} / {result.files_removed:,} / {left}"
    )
    return [
        Figure(f"purge {N_CLIPS:,} expired clips", elapsed, "s", Target("<=", 60)),
        Figure("purge rate", result.destroyed / elapsed, "clips/s"),
        Figure("purge peak RSS growth", memory.growth_mb, "MB", Target("<=", 64)),
        Figure("purge left files behind", left, "files", Target("<=", 0)),
    ]


def bench_purge_steps() -> list[Figure]:
    """Where a batch's time goes: each step of a purge batch timed on its own, one after the other.

    The purge itself overlaps the file work with the ledger entries; here they run in
    turn so each can be read separately (medians over STEP_BATCHES batches of 1,000).
    """
    steps: dict[str, list[float]] = defaultdict(list)
    with (
        tempfile.TemporaryDirectory(prefix="bench-clips-") as storage,
        ThreadPoolExecutor(FILE_THREADS) as pool,
    ):
        root = Path(storage)
        settings.CLIP_STORAGE_DIR = root
        make_expired_clips(root, STEP_BATCHES * 1000)
        while purge_batch_in_steps(root, pool, steps):
            pass
    figures = [
        Figure(f"purge step per 1,000: {name}", statistics.median(ms), "ms") for name, ms in steps.items()
    ]
    report("purge steps measured over", f"{len(steps['claim and mark'])} batches of 1,000")
    return figures


def purge_batch_in_steps(root: Path, pool: ThreadPoolExecutor, steps: dict[str, list[float]]) -> bool:
    def timed(name: str, started: float) -> float:
        now = time.perf_counter()
        steps[name].append((now - started) * 1000)
        return now

    with transaction.atomic():
        started = time.perf_counter()
        batch = clips_claim_due(now=timezone.now(), limit=1000)
        if not batch:
            return False
        started = timed("claim and mark", started)
        paths = [path for path in (clip_file_path(clip, root) for clip in batch) if path is not None]
        overwritten = [path for part in in_slices(pool, overwrite_all, paths) for path in part]
        started = timed("overwrite files", started)
        storage_flush(root)
        started = timed("flush to disk", started)
        in_slices(pool, remove_all, overwritten)
        started = timed("remove files", started)
        audit_record_many(pending=[destruction_entry(clip) for clip in batch])
        started = timed("ledger entries", started)
    timed("commit", started)
    return True


def make_expired_clips(storage: Path, count: int) -> None:
    camera = bench_camera()
    Clip.objects.filter(camera=camera).delete()  # earlier runs' rows (files long gone)
    expired = timezone.now() - dt.timedelta(days=1)
    content = os.urandom(FILE_BYTES)
    for start in range(0, count, 5000):
        batch = []
        for n in range(start, min(start + 5000, count)):
            name = f"{n // 1000:03d}/clip-bench-{n}.mp4"
            (storage / name).parent.mkdir(exist_ok=True)
            (storage / name).write_bytes(content)
            batch.append(
                Clip(
                    camera=camera,
                    requested_seconds=10,
                    status=ClipStatus.READY,
                    period_start=expired,
                    period_end=expired,
                    file=name,
                    size_bytes=FILE_BYTES,
                    sha256="0" * 64,
                    expires_at=expired,
                )
            )
        Clip.objects.bulk_create(batch)
    # Real clips were written weeks before they expire: their data is on disk, not
    # waiting in the page cache for the purge's flush to write it out.
    os.sync()


def bench_camera() -> Camera:
    camera, _ = Camera.objects.get_or_create(
        code=CAMERA_CODE, defaults={"name": "bench retention", "location": make_point(lat=37.56, lon=126.97)}
    )
    return camera


# --- verify ----------------------------------------------------------------------------


def bench_verify() -> list[Figure]:
    ensure_entries(N_ENTRIES)
    with RssSampler() as memory:
        started = time.perf_counter()
        chain = audit_chain_verify()
        elapsed = time.perf_counter() - started
    report("chain", f"{chain.checked:,} entries, {'intact' if chain.intact else 'BROKEN: ' + chain.problem}")
    return [
        Figure(f"audit_verify over {chain.checked:,} entries", elapsed, "s"),
        Figure("audit_verify rate", chain.checked / elapsed, "rows/s"),
        Figure("audit_verify peak RSS growth", memory.growth_mb, "MB", Target("<=", 64)),
        Figure("audit chain intact", 1 if chain.intact else 0, "", Target(">=", 1)),
    ]


def ensure_entries(count: int) -> None:
    missing = count - AuditEntry.objects.count()
    if missing <= 0:
        return
    started = time.perf_counter()
    for start in range(0, missing, 10_000):
        pending = [
            PendingEntry(
                action="video.view_start",
                actor=f"user:bench{n % 50}",
                object_type="camera",
                object_id=n % 5000,
                details={"incident_id": n % 997, "bench": True},
            )
            for n in range(start, min(start + 10_000, missing))
        ]
        audit_record_many(pending=pending)
    report("audit entries added", f"{missing:,} in {time.perf_counter() - started:.0f} s")
