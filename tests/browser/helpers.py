"""Helpers shared by the browser tests."""

from __future__ import annotations

import time
from typing import Any


def wait_js(page: Any, expression: str, arg: Any = None, timeout: float = 15_000) -> None:
    """Wait until `expression` (or `(arg) => …`) is truthy in the page, polled from Python.

    Playwright's own `wait_for_function` re-evaluates the predicate inside the page with
    eval(), which our Content-Security-Policy (`script-src 'self'`) rightly forbids.
    `page.evaluate` goes through the DevTools protocol, outside the page's policy.
    """
    deadline = time.monotonic() + timeout / 1000
    while not page.evaluate(expression, arg):
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {timeout:.0f} ms: {expression}")
        page.wait_for_timeout(50)
