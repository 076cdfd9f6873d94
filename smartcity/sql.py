"""Written-out SQL for the few statements every partner event runs.

The ORM composes each statement anew on every call; for the intake's small inserts
that composing cost more Python time than PostgreSQL took to run them. These run the
statement as written, on Django's connection (same transaction, same on_commit hooks).

Inserts whose results nobody reads before the commit (timeline entries, ranked and
shared cameras) may wait: inside a `writes_deferred()` block they are queued and sent
together, in one round trip, when the block's owner flushes them (the intake does so
with the audit chain's append, just before its commit). Every round trip inside a
request costs the server two context switches and a GIL hand-off besides the query.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any

from django.db import connection

Statement = tuple[str, list[Any]]

# The queued inserts of the outermost open `writes_deferred()` block of this thread / task.
_deferred: ContextVar[list[Statement] | None] = ContextVar("writes_deferred", default=None)


def rows_insert(
    sql: str, params: list[Any] | dict[str, Any], *, returning: bool = False
) -> list[tuple[Any, ...]]:
    """Run a written-out INSERT; the rows it returns when `returning`."""
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall() if returning else []


def rows_insert_soon(sql: str, params: list[Any]) -> None:
    """An INSERT whose result nobody needs: queued in a `writes_deferred()` block, else run now."""
    queue = _deferred.get()
    if queue is None:
        rows_insert(sql, params)
    else:
        queue.append((sql.strip().rstrip(";"), params))


@contextlib.contextmanager
def writes_deferred() -> Iterator[list[Statement]]:
    """Queue `rows_insert_soon` inserts; the caller sends the yielded list before its block's commit.

    Nested blocks join the outermost one. Must run inside `transaction.atomic()`: the
    queued inserts belong to its transaction.
    """
    queue = _deferred.get()
    if queue is not None:
        yield queue
        return
    if not connection.in_atomic_block:
        raise RuntimeError("writes_deferred() must run inside transaction.atomic()")
    queue = []
    token = _deferred.set(queue)
    try:
        yield queue
    finally:
        _deferred.reset(token)


def statements_joined(statements: list[Statement]) -> Statement:
    """Several statements as one query string (one round trip under client-side binding)."""
    return "; ".join(sql for sql, _ in statements), [value for _, params in statements for value in params]


def statements_run(statements: list[Statement]) -> None:
    """Send queued statements in one round trip."""
    if statements:
        with connection.cursor() as cursor:
            cursor.execute(*statements_joined(statements))
