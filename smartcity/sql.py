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
import functools
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any

from django.db import connection
from django.db.models import Field, Model

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


def instance_insert(instance: Model) -> None:
    """INSERT a new model instance as `instance.save()` would, for the intake's hot rows.

    Same values (each field's `pre_save`, so `auto_now_add` and defaults, then its
    database preparation) and the same columns, read off the model, so a new field can
    never be left out; what it skips is the ORM's composing of the statement on every
    call and the `pre_save`/`post_save` signals (nothing in this project listens to them
    for the models written this way: incidents and shares). Sets the primary key.
    """
    model = type(instance)
    sql, fields = insert_statement(model)
    params = [field.get_db_prep_save(field.pre_save(instance, True), connection) for field in fields]
    for field, value in zip(fields, params, strict=True):
        # Spatial values in another SRID would need ST_Transform around the placeholder.
        placeholder = getattr(field, "get_placeholder", None)
        if placeholder is not None and placeholder(value, None, connection) != "%s":
            raise ValueError(f"{model.__name__}.{field.name}: value needs the ORM's own INSERT")
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        (pk,) = cursor.fetchone()
    instance.pk = pk
    instance._state.adding = False
    instance._state.db = connection.alias


@functools.cache
def insert_statement(model: type[Model]) -> tuple[str, list[Field[Any, Any]]]:
    """The INSERT … RETURNING pk of every concrete column but an automatic primary key."""
    meta = model._meta
    fields = [field for field in meta.concrete_fields if not getattr(field, "db_returning", False)]
    columns = ", ".join(connection.ops.quote_name(field.column) for field in fields)
    placeholders = ", ".join(["%s"] * len(fields))
    pk_column = connection.ops.quote_name(meta.pk.column)
    table = connection.ops.quote_name(meta.db_table)
    # Names from the model, quoted; values only ever as parameters.
    sql = f"INSERT INTO {table} ({columns}) VALUES ({placeholders}) RETURNING {pk_column}"  # noqa: S608
    return sql, fields


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
