"""Checking the audit chain: every entry's hash, and every link to the entry before it.

Streams the table in id order through a server-side cursor (`iterator`), holding one
chunk at a time, so a chain of any length is checked in constant memory. Rows come as
plain tuples: building a model instance per row would double the time on a long chain.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass

from audit.models import AuditEntry
from audit.services import COPY_COLUMNS, GENESIS_HASH, canonical_fields

FIELDS = ("id", *COPY_COLUMNS)  # every stored column of an entry, in the order COPY writes them


@dataclass(frozen=True)
class ChainReport:
    """The outcome of a check: how many entries were good, and the first bad one if any."""

    checked: int
    head_hash: str
    bad_entry_id: int | None = None
    problem: str = ""

    @property
    def intact(self) -> bool:
        return self.bad_entry_id is None


def audit_chain_verify(
    *, chunk_size: int = 5000, progress: Callable[[int], None] | None = None
) -> ChainReport:
    """Recompute the chain from the first entry and stop at the first entry that is wrong.

    An entry is wrong when its content does not hash to its stored hash (a field was
    changed) or its `prev_hash` is not the hash of the entry before it (an entry was
    removed or the order changed). Removing the newest entries leaves a valid shorter
    chain; compare `head_hash` with a copy kept elsewhere to notice that.
    """
    previous_hash = GENESIS_HASH
    checked = 0
    rows = AuditEntry.objects.order_by("id").values_list(*FIELDS).iterator(chunk_size=chunk_size)
    for row in rows:
        entry_id, at, action, actor, user_id, partner_id, object_type, object_id = row[:8]
        details, request_id, prev_hash, stored_hash = row[8:]
        if prev_hash != previous_hash:
            return ChainReport(checked, previous_hash, entry_id, link_problem(checked, prev_hash))
        content = canonical_fields(
            at=at,
            action=action,
            actor=actor,
            user_id=user_id,
            partner_id=partner_id,
            object_type=object_type,
            object_id=object_id,
            details=details,
            request_id=request_id,
            prev_hash=prev_hash,
        )
        if hashlib.sha256(content).hexdigest() != stored_hash:
            return ChainReport(
                checked, previous_hash, entry_id, "its content does not match its hash (altered)"
            )
        previous_hash = stored_hash
        checked += 1
        if progress is not None and checked % 100_000 == 0:
            progress(checked)
    return ChainReport(checked, previous_hash)


def link_problem(position: int, prev_hash: str) -> str:
    if position == 0:
        return "the first entry does not start the chain (earlier entries removed)"
    return "its prev_hash is not the hash of the entry before it (an entry was removed or reordered)"
