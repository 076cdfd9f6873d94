"""A Celery worker is killed (SIGKILL) in the middle of destroying expired footage.

The worker dies after it has overwritten and removed some files but before their
batch's rows and 파기 (destruction) entries are committed: the worst moment, footage
gone with nothing on the ledger yet. The next run must finish the job — every clip
destroyed, exactly one destruction entry each, the hash chain intact.
"""

from __future__ import annotations

import datetime as dt
import io
import os
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from celery import Celery
from django.core.management import call_command
from django.db import connection, transaction

from audit.models import AuditEntry
from audit.services import CHAIN_LOCK_KEY
from cameras.models import Clip
from tests.clips.conftest import make_clip
from tests.faults.services import RedisServer
from tests.fixtures import celery_worker as celery_fixture
from tests.fixtures.celery_worker import CeleryWorker

pytestmark = [pytest.mark.faults, pytest.mark.django_db(transaction=True)]

PURGE = "cameras.tasks.purge_footage"  # what beat sends every CLIP_PURGE_EVERY_S
BATCH = 1000  # clips_purge_expired's default batch, which the beat task uses
CLIPS = 2 * BATCH


@pytest.fixture
def storage(settings, tmp_path) -> Path:
    settings.CLIP_STORAGE_DIR = tmp_path / "clips"
    return Path(settings.CLIP_STORAGE_DIR)


@pytest.fixture
def broker(private_redis: RedisServer, monkeypatch: pytest.MonkeyPatch) -> Celery:
    """A Celery client on a private Redis: the killed task's unacknowledged message stays
    there, and no later test's worker on the shared Redis picks it up an hour on."""
    app = Celery("faults", broker=private_redis.url, set_as_current=False)
    monkeypatch.setattr(celery_fixture, "celery_app", app)  # CeleryWorker pings through it
    return app


@pytest.fixture
def workers(
    storage: Path, broker: Celery, private_redis: RedisServer
) -> Iterator[Callable[[], CeleryWorker]]:
    """`new_worker()` starts a worker on the test database, the storage and the private broker."""
    started: list[CeleryWorker] = []

    def new_worker() -> CeleryWorker:
        env = dict(
            os.environ,
            DATABASE_URL=celery_fixture.test_database_url(),
            REDIS_URL=private_redis.url,
            CELERY_BROKER_URL=private_redis.url,
            CLIP_STORAGE_DIR=str(storage),
        )
        worker = CeleryWorker(env)
        started.append(worker)
        worker.start()
        return worker

    yield new_worker
    for worker in started:
        worker.stop()


def files_in(storage: Path) -> set[str]:
    return {str(path.relative_to(storage)) for path in storage.rglob("*.mp4")}


def wait_until(condition: Callable[[], bool], timeout: float, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    return False


def ledger_waiters() -> int:
    """Backends waiting for the audit chain's lock."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted")
        return int(cursor.fetchone()[0])


def test_a_purge_killed_mid_batch_is_finished_by_the_next_run_destroying_nothing_twice(
    storage, workers, broker, center_factory, camera_factory
):
    centre = center_factory("seoul-junggu", (126.96, 37.54, 127.03, 37.58))
    camera = camera_factory(lat=37.5663, lon=126.9779, center=centre)
    expired = dt.timedelta(hours=-1)
    clips = [make_clip(camera, storage, expires_in=expired, content=bytes(4096)) for _ in range(CLIPS)]
    assert files_in(storage) == {clip.file for clip in clips}

    first = workers()
    # Another writer holds the ledger's lock for a moment, so the worker is caught at the
    # worst point: its first batch's files overwritten and removed, their rows and 파기
    # entries not yet committed. There it dies.
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [CHAIN_LOCK_KEY])
        broker.send_task(PURGE)
        assert wait_until(lambda: ledger_waiters() == 1, timeout=60), "the purge never reached the ledger"
        # The purge removes a batch's files on other threads while its entries wait for
        # the ledger: let that finish, so the whole first batch is gone unrecorded.
        assert wait_until(lambda: len(files_in(storage)) == CLIPS - BATCH, timeout=60), len(files_in(storage))
        first.process.kill()  # SIGKILL: no warm shutdown, no cleanup
        first.process.wait()

    left = files_in(storage)
    orphaned = [clip for clip in Clip.objects.filter(destroyed_at__isnull=True) if clip.file not in left]
    assert len(orphaned) == CLIPS - len(left) == BATCH, "footage removed, nothing recorded yet"
    assert not AuditEntry.objects.filter(action="clip.destroyed").exists()

    workers()
    broker.send_task(PURGE)  # the next run, as beat would send it
    assert wait_until(lambda: not Clip.objects.filter(destroyed_at__isnull=True).exists(), timeout=120)

    assert files_in(storage) == set()
    entries = Counter(AuditEntry.objects.filter(action="clip.destroyed").values_list("object_id", flat=True))
    assert set(map(int, entries)) == {clip.pk for clip in clips}
    assert set(entries.values()) == {1}, "a clip was destroyed twice on the ledger"
    out = io.StringIO()
    call_command("audit_verify", stdout=out)  # exits non-zero on a broken chain
    assert "audit chain intact" in out.getvalue()
