"""`smartcity.memo`: what a request remembers on an instance is gone when the request ends."""

from __future__ import annotations

from partners.models import Partner
from smartcity.memo import memo_set, request_memos


def test_a_memo_set_while_a_request_is_served_is_removed_at_its_end_and_others_stay():
    remembered, kept = Partner(slug="a"), Partner(slug="b")
    memo_set(kept, "_note", "outside any request")

    with request_memos():
        memo_set(remembered, "_note", ["read during the request"])
        assert remembered._note == ["read during the request"]  # type: ignore[attr-defined]

    assert not hasattr(remembered, "_note")
    assert kept._note == "outside any request"  # type: ignore[attr-defined]


def test_memos_are_removed_even_when_the_request_fails():
    remembered = Partner(slug="a")

    try:
        with request_memos():
            memo_set(remembered, "_note", 1)
            raise RuntimeError("the view failed")
    except RuntimeError:
        pass

    assert not hasattr(remembered, "_note")
