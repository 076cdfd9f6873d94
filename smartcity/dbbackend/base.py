"""PostGIS through Django's own backend; only the pool's check of a connection differs.

Before lending a connection, the pool checks it, so that after a PostgreSQL restart a
request gets a fresh connection instead of a dead one. psycopg's check
(`ConnectionPool.check_connection`, what CONN_HEALTH_CHECKS turns on) sends an empty
query and waits for the answer: one more round trip on every request, and under load
that wait costs two context switches and a GIL hand-off besides. A connection idle in
the pool has nothing to read from its socket unless the server went away: PostgreSQL
sends "terminating connection" and closes, and a crashed server's socket reads as
closed. So a connection with a quiet socket is lent at once, and only one with
something waiting gets the full check, which fails it and lets the pool replace it.
"""

from __future__ import annotations

import select
from collections.abc import Callable
from typing import Any

from django.contrib.gis.db.backends.postgis.base import DatabaseWrapper as PostGISDatabaseWrapper
from django.core.exceptions import ImproperlyConfigured
from django.db.backends.base.base import NO_DB_ALIAS
from django.db.utils import DatabaseErrorWrapper
from django.utils.functional import cached_property
from psycopg import Connection
from psycopg.pq import TransactionStatus
from psycopg_pool import ConnectionPool

from smartcity.sql import prepared_forget

# SQLSTATE 0A000 with this message: a prepared statement whose result a migration changed.
RESULT_TYPE_CHANGED = "cached plan must not change result type"


def connection_check(conn: Connection[Any]) -> None:
    """Raise if `conn` is unfit to lend out; no round trip while its socket is quiet."""
    if conn.closed or conn.broken or conn.info.transaction_status != TransactionStatus.IDLE:
        ConnectionPool.check_connection(conn)  # raises for a closed or broken one
        return
    readable, _, _ = select.select([conn.fileno()], [], [], 0)
    if readable:
        ConnectionPool.check_connection(conn)


class PreparedAwareErrorWrapper(DatabaseErrorWrapper):
    """Django's error wrapper, which also lets a connection's prepared statements be
    prepared anew when PostgreSQL refuses them after a migration: that request fails,
    the next ones on the connection work (smartcity/sql.py:Prepared)."""

    wrapper: Any  # Django's (the database wrapper), undeclared in its type stubs

    def __exit__(self, exc_type: Any, exc_value: Any, traceback: Any) -> None:
        if exc_value is not None and RESULT_TYPE_CHANGED in str(exc_value):
            raw = self.wrapper.connection
            if raw is not None:
                prepared_forget(raw)
        super().__exit__(exc_type, exc_value, traceback)


class DatabaseWrapper(PostGISDatabaseWrapper):
    # Django's, undeclared in its type stubs (annotations only: nothing is shadowed).
    _connection_pools: dict[str, ConnectionPool[Any]]
    _configure_connection: Callable[[Connection[Any]], Any]

    @cached_property
    def wrap_database_errors(self) -> PreparedAwareErrorWrapper:
        return PreparedAwareErrorWrapper(self)

    @property
    def pool(self) -> ConnectionPool[Any] | None:
        """Django's pool (django/db/backends/postgresql/base.py, 5.2) with `connection_check`."""
        pool_options = self.settings_dict["OPTIONS"].get("pool")
        if self.alias == NO_DB_ALIAS or not pool_options:
            return None
        if self.alias not in self._connection_pools:
            if self.settings_dict.get("CONN_MAX_AGE", 0) != 0:
                raise ImproperlyConfigured("Pooling doesn't support persistent connections.")
            connect_kwargs = self.get_connection_params()
            connect_kwargs["autocommit"] = True  # Django sets it as it needs afterwards
            pool: ConnectionPool[Any] = ConnectionPool(
                kwargs=connect_kwargs,
                open=False,
                configure=self._configure_connection,
                check=connection_check,
                **({} if pool_options is True else pool_options),
            )
            # Threads racing here each build a pool; the first one stored wins.
            self._connection_pools.setdefault(self.alias, pool)
        return self._connection_pools[self.alias]
