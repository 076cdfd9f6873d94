"""The pool's check of a connection before lending it: free when healthy, thorough when not."""

from __future__ import annotations

import time

import psycopg
import pytest
from django.db import connection
from psycopg_pool import ConnectionPool

from smartcity.dbbackend.base import connection_check

pytestmark = pytest.mark.django_db


@pytest.fixture
def raw_connection():
    params = connection.get_connection_params()
    params.pop("cursor_factory", None)
    conn = psycopg.connect(**params, autocommit=True)
    yield conn
    conn.close()


@pytest.fixture
def full_checks(monkeypatch):
    """Counts psycopg's own check (an empty query: one round trip) as connection_check uses it."""
    calls: list[object] = []
    original = ConnectionPool.check_connection

    def counted(conn: psycopg.Connection) -> None:
        calls.append(conn)
        original(conn)

    monkeypatch.setattr(ConnectionPool, "check_connection", staticmethod(counted))
    return calls


def test_a_healthy_idle_connection_is_lent_without_a_round_trip(raw_connection, full_checks):
    raw_connection.execute("SELECT 1")

    connection_check(raw_connection)

    assert full_checks == []


def test_a_connection_whose_server_ended_it_is_refused(raw_connection, full_checks):
    pid = raw_connection.info.backend_pid
    with psycopg.connect(**connection.get_connection_params() | {"cursor_factory": psycopg.Cursor}) as other:
        other.execute("SELECT pg_terminate_backend(%s)", [pid])
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:  # the server's goodbye reaches the socket
        try:
            connection_check(raw_connection)
        except psycopg.OperationalError:
            break
        time.sleep(0.05)
    else:
        pytest.fail("a connection ended by the server was still lent out")
    assert full_checks, "the suspicious connection got psycopg's full check"


def test_the_project_pool_uses_the_cheap_check():
    pool = getattr(connection, "pool", None)  # the PostgreSQL backend's (untyped in the stubs)
    assert pool is not None
    assert pool._check is connection_check
