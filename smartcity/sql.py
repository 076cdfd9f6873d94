"""Written-out SQL for the few statements every partner event runs.

The ORM composes each statement anew on every call; for the intake's small inserts
that composing cost more Python time than PostgreSQL took to run them. These run the
statement as written, on Django's connection (same transaction, same on_commit hooks).
"""

from __future__ import annotations

from typing import Any

from django.db import connection


def rows_insert(
    sql: str, params: list[Any] | dict[str, Any], *, returning: bool = False
) -> list[tuple[Any, ...]]:
    """Run a written-out INSERT; the rows it returns when `returning`."""
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall() if returning else []
