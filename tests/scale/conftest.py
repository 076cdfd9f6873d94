"""Fixtures of the scale-out tests: the cluster (once for the package) and the socket loop (per test)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.scale.cluster import Cluster, SocketLoop, cluster_running

# Beat fires every periodic task many times a second, so overlapping runs on the two
# workers are the normal case in these tests, not a lucky accident.
FAST_BEAT = {
    "ESCALATION_CHECK_EVERY_S": "0.3",
    "SHARE_EXPIRY_CHECK_EVERY_S": "0.3",
    "CLIP_PURGE_EVERY_S": "0.5",
    "WEBHOOK_SWEEP_EVERY_S": "0.5",
    "CAMERA_PROBE_EVERY_S": "1",
    "CAMERA_PROBE_TIMEOUT_S": "5",
    "WEBHOOK_REQUIRE_HTTPS": "false",  # the partner's endpoint is a local http server
    "WEBHOOK_TIMEOUT_S": "1",
    "WEBHOOK_BACKOFF_BASE_S": "0.3",
    # Workers' own INFO lines ("destroyed 1000 clips", …) are not what these tests read.
    "LOG_LEVEL": "WARNING",
}


@pytest.fixture(scope="package")
def clip_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("scale-clips")


@pytest.fixture(scope="package")
def cluster(django_db_setup: None, clip_dir: Path) -> Iterator[Cluster]:
    """Two Daphne instances, two Celery workers and one beat, started once for tests/scale/."""
    with cluster_running(**FAST_BEAT, CLIP_STORAGE_DIR=str(clip_dir)) as running:
        yield running


@pytest.fixture
def sockets() -> Iterator[SocketLoop]:
    loop = SocketLoop()
    yield loop
    loop.close()
