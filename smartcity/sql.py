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
import re
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any

from django.db import connection
from django.db.models import Field, Model

# A statement and its parameters; a `Prepared` one runs as EXECUTE (see below).
Statement = tuple["str | Prepared", Any]

# The queued inserts of the outermost open `writes_deferred()` block of this thread / task.
_deferred: ContextVar[list[Statement] | None] = ContextVar("writes_deferred", default=None)


def rows_insert(
    sql: str | Prepared, params: list[Any] | dict[str, Any], *, returning: bool = False
) -> list[tuple[Any, ...]]:
    """Run a written-out INSERT; the rows it returns when `returning`."""
    with connection.cursor() as cursor:
        cursor.execute(sql.ready(cursor) if isinstance(sql, Prepared) else sql, params)
        return cursor.fetchall() if returning else []


def instance_insert(instance: Model, *, reserve: tuple[type[Model], ...] = ()) -> list[int]:
    """INSERT a new model instance as `instance.save()` would, for the intake's hot rows.

    Same values (each field's `pre_save`, so `auto_now_add` and defaults, then its
    database preparation) and the same columns, read off the model, so a new field can
    never be left out; what it skips is the ORM's composing of the statement on every
    call and the `pre_save`/`post_save` signals (nothing in this project listens to them
    for the models written this way: incidents and shares). Sets the primary key.

    `reserve`: models to draw one primary key each for, from their own sequences, in the
    same round trip (returned in order), for rows the caller writes later with
    `instance_insert_soon`. A key drawn and never used is a gap, as after a rollback.
    """
    statement, fields = insert_statement(type(instance), reserve=reserve)
    with connection.cursor() as cursor:
        cursor.execute(statement.ready(cursor), insert_params(instance, fields))
        row = cursor.fetchone()
    assert row is not None  # INSERT … RETURNING of one row
    instance.pk = row[0]
    instance._state.adding = False
    instance._state.db = connection.alias
    return list(row[1:])


def instance_insert_soon(instance: Model) -> None:
    """`instance_insert` for an instance whose primary key is already drawn (`reserve`):
    queued in a `writes_deferred()` block when nobody reads the row before the commit."""
    model = type(instance)
    if instance.pk is None:
        raise ValueError(f"{model.__name__}: draw its primary key first (instance_insert's reserve)")
    statement, fields = insert_statement(model, with_pk=True)
    rows_insert_soon(statement, insert_params(instance, fields))
    instance._state.adding = False
    instance._state.db = connection.alias


def insert_params(instance: Model, fields: list[Field[Any, Any]]) -> list[Any]:
    params = [field.get_db_prep_save(field.pre_save(instance, True), connection) for field in fields]
    for field, value in zip(fields, params, strict=True):
        # Spatial values in another SRID would need ST_Transform around the placeholder.
        placeholder = getattr(field, "get_placeholder", None)
        if placeholder is not None and placeholder(value, None, connection) != "%s":
            raise ValueError(f"{type(instance).__name__}.{field.name}: value needs the ORM's own INSERT")
    return params


@functools.cache
def insert_statement(
    model: type[Model], *, reserve: tuple[type[Model], ...] = (), with_pk: bool = False
) -> tuple[Prepared, list[Field[Any, Any]]]:
    """The INSERT of every concrete column (but an automatic primary key unless `with_pk`),
    RETURNING the new pk and, for each model in `reserve`, a key drawn from its sequence."""
    meta = model._meta
    fields = [field for field in meta.concrete_fields if with_pk or not getattr(field, "db_returning", False)]
    quote = connection.ops.quote_name
    columns = ", ".join(quote(field.column) for field in fields)
    placeholders = ", ".join(["%s"] * len(fields))
    returning = [quote(meta.pk.column)] + [
        f"nextval(pg_get_serial_sequence('{other._meta.db_table}', '{other._meta.pk.column}'))"
        for other in reserve
    ]
    # Names from the models (quoted, or literals of table names); values only ever as parameters.
    sql = f"INSERT INTO {quote(meta.db_table)} ({columns}) VALUES ({placeholders})"  # noqa: S608
    if not with_pk:
        sql += f" RETURNING {', '.join(returning)}"
    name = "_".join(
        ["smartcity_insert", meta.db_table, *(["pk"] if with_pk else []), *reserved_names(reserve)]
    )
    return Prepared(name, sql), fields


def reserved_names(reserve: tuple[type[Model], ...]) -> list[str]:
    return [f"draws_{other._meta.db_table}" for other in reserve]


def rows_insert_soon(sql: str | Prepared, params: list[Any]) -> None:
    """An INSERT whose result nobody needs: queued in a `writes_deferred()` block, else run now."""
    queue = _deferred.get()
    if queue is None:
        rows_insert(sql, params)
    else:
        queue.append((sql if isinstance(sql, Prepared) else sql.strip().rstrip(";"), params))


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


def statements_joined(cursor: Any, statements: list[Statement]) -> str:
    """Several statements as one query string, values bound: one round trip for them all.

    Each statement is bound on its own (the client-side binding psycopg would do for the
    whole): psycopg keeps its parse of a statement with at most 50 parameters, so these
    few statement shapes are parsed once per process. The intake's last round trip has
    ~60 parameters in all, and psycopg parsed that joined text again on every event.
    """
    return "; ".join(
        cursor.mogrify(sql.ready(cursor) if isinstance(sql, Prepared) else sql, params)
        for sql, params in statements
    )


def statements_run(statements: list[Statement]) -> None:
    """Send queued statements in one round trip."""
    if statements:
        with connection.cursor() as cursor:
            cursor.execute(statements_joined(cursor, statements))


class Prepared:
    """A hot statement each database connection prepares once, then runs with EXECUTE.

    Every partner event runs the same few statements; sent as text, PostgreSQL parses,
    analyses and plans each one every time (for the place's two reads ~40 % of their
    CPU on the server). Prepared, it only executes them. The statement is prepared in
    a round trip of its own the first time a connection runs it (PREPARE is not undone
    by a rollback, so it is recorded only once it has succeeded), and `execute_sql`
    (EXECUTE with the same placeholders) can then join other statements in one round
    trip, under client-side binding like every other statement. A new connection (after
    a PostgreSQL restart, say) prepares again, and so does one on which PostgreSQL
    refused a prepared statement after a migration (`prepared_forget`).

    `sql` takes only named placeholders (`%(name)s`), listed in `params` in the order
    EXECUTE passes them, or, without `params`, only positional ones (`%s`). Where
    PostgreSQL cannot tell a parameter's type from its place (a bare `SELECT %s` feeding
    an INSERT), the statement casts it.
    """

    def __init__(self, name: str, sql: str, params: tuple[str, ...] | None = None) -> None:
        bare = NAMED_PLACEHOLDER.sub("", sql).replace("%%", "")
        if params is None:  # positional: `%s` only, passed in order
            count = bare.count("%s")
            if NAMED_PLACEHOLDER.search(sql) or "%" in bare.replace("%s", ""):
                raise ValueError(f"{name}: positional placeholders must all be %s")
            pieces = iter(range(1, count + 1))
            body = re.sub(r"%%|%s", lambda found: "%" if found.group(0) == "%%" else f"${next(pieces)}", sql)
            arguments = ["%s"] * count
        else:
            if set(NAMED_PLACEHOLDER.findall(sql)) != set(params) or "%" in bare:
                raise ValueError(f"{name}: placeholders must be %(name)s, one per name in {params}")
            positions = {param: n for n, param in enumerate(params, start=1)}
            body = NAMED_PLACEHOLDER.sub(lambda found: f"${positions[found.group(1)]}", sql).replace(
                "%%", "%"
            )
            arguments = [f"%({param})s" for param in params]
        self.name = name
        self.prepare_sql = f"PREPARE {name} AS {body.strip().rstrip(';')}"
        self.execute_sql = f"EXECUTE {name}({', '.join(arguments)})" if arguments else f"EXECUTE {name}"

    def ready(self, cursor: Any) -> str:
        """`execute_sql`, once this statement is prepared on `cursor`'s connection."""
        raw = cursor.connection  # psycopg's connection, whatever wraps the cursor
        state: PreparedOnConnection | None = getattr(raw, PREPARED_ATTRIBUTE, None)
        if state is None:
            state = PreparedOnConnection()
            setattr(raw, PREPARED_ATTRIBUTE, state)
        if not state.generation:
            prepare_sql, execute_sql = self.prepare_sql, self.execute_sql
        else:  # the names of an earlier generation may still be taken on this connection
            renamed = f"{self.name}_{state.generation}"
            prepare_sql = self.prepare_sql.replace(f"PREPARE {self.name} ", f"PREPARE {renamed} ", 1)
            execute_sql = self.execute_sql.replace(f"EXECUTE {self.name}", f"EXECUTE {renamed}", 1)
        if self.name not in state.names:
            cursor.execute(prepare_sql)
            state.names.add(self.name)
        return execute_sql


class PreparedOnConnection:
    """Which `Prepared` statements a psycopg connection holds, under which generation's names."""

    def __init__(self) -> None:
        self.generation = 0
        self.names: set[str] = set()


def prepared_forget(raw: Any) -> None:
    """After PostgreSQL refused a prepared statement on `raw` (a migration changed what it
    returns: "cached plan must not change result type"), prepare every statement again,
    under new names, as each is next used. Called by the database backend."""
    state: PreparedOnConnection | None = getattr(raw, PREPARED_ATTRIBUTE, None)
    if state is not None:
        state.generation += 1
        state.names.clear()


NAMED_PLACEHOLDER = re.compile(r"%\((\w+)\)s")
# The `PreparedOnConnection` of a psycopg connection, kept on that connection.
PREPARED_ATTRIBUTE = "_smartcity_prepared"
