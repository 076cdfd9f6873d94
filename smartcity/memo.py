"""Values a request keeps on the model instances it has just written, dropped when it ends.

The intake remembers on the incident what it has just written (its ranked cameras, its
new shares) to build the dashboards' push and the partner's 201 without reading them
back. Those rows point back at the incident (Django caches `ranked.incident`), so the
incident and its memo form a reference cycle, which only Python's cyclic collector can
free; under load its runs paused whole server processes. Memos set while a request is
served are removed when the request ends (`smartcity.http`), and reference counting
frees the lot at once. Outside a request (Celery tasks, commands, tests calling a
service) a memo stays with its instance, as any attribute would.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any

from django.db.models import Model

# (instance, attribute) of each memo set in the request being served by this thread.
_memos: ContextVar[list[tuple[Model, str]] | None] = ContextVar("request_memos", default=None)


def memo_set(instance: Model, name: str, value: Any) -> None:
    """`setattr(instance, name, value)`, undone when the current request ends."""
    setattr(instance, name, value)
    memos = _memos.get()
    if memos is not None:
        memos.append((instance, name))


@contextlib.contextmanager
def request_memos() -> Iterator[None]:
    """Around one request's handling: the memos set inside are removed at its end."""
    memos: list[tuple[Model, str]] = []
    token = _memos.set(memos)
    try:
        yield
    finally:
        _memos.reset(token)
        for instance, name in memos:
            vars(instance).pop(name, None)
