"""Daphne's processes set Python's collector up as smartcity/collector.py says."""

from __future__ import annotations

import gc

from smartcity.collector import YOUNG_EVERY


def test_loading_the_asgi_application_freezes_startup_objects_and_spaces_young_collections():
    import smartcity.asgi  # noqa: F401  (what Daphne loads)

    assert gc.get_threshold()[0] == YOUNG_EVERY
    assert gc.get_freeze_count() > 10_000  # Django, the apps and the libraries, never walked again
