"""The fault suite (`make faults`): real services stopped, killed and restarted under load.

Every test here starts the servers it breaks (see services.py): the machine's shared
PostgreSQL and Redis are never touched. `pytest -m "not faults"` leaves the suite out.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.faults.services import PostgresCluster, RedisServer


@pytest.fixture
def private_redis() -> Iterator[RedisServer]:
    server = RedisServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def private_postgres() -> Iterator[PostgresCluster]:
    cluster = PostgresCluster()
    try:
        cluster.init()
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
