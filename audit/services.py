"""Writing the audit log.

Every entry's hash covers its own content and the previous entry's hash, so changing,
removing or reordering any entry breaks the chain from there on (`audit_verify`).
Writers are serialised by a transaction-scoped advisory lock: two transactions can
never both append after the same entry, and the lock is released at commit/rollback.

Every writer waits for the lock's holder, so nothing slow may happen while it is held.
An entry's canonical bytes are built before the lock with a gap where the previous
hash goes; PostgreSQL fills the gap and hashes (`sha256`) in the INSERT itself, so the
lock, the look-up of the chain's head and the inserts are one round trip with no
Python in between — and an intake sends its COMMIT in that same round trip too
(`audited_transaction`). Under load the holder's Python had to win back the GIL after
each step while the lock was held, and requests queued on the lock.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
from collections.abc import Iterator, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from audit.models import AuditEntry
from smartcity.sql import Prepared, Statement, statements_joined, statements_run, writes_deferred

GENESIS_HASH = "0" * 64
CHAIN_LOCK_KEY = 0x5AFE_7E7  # any constant shared by every writer


def canonical(entry: AuditEntry, *, prev_hash: str | None = None) -> bytes:
    """The bytes an entry's hash covers: every field that means something, in a fixed form.

    `prev_hash`: in place of the entry's own (`canonical_around_prev_hash` leaves it empty).
    """
    return canonical_fields(
        at=entry.at,
        action=entry.action,
        actor=entry.actor,
        user_id=entry.user_id,
        partner_id=entry.partner_id,
        object_type=entry.object_type,
        object_id=entry.object_id,
        details=entry.details,
        request_id=entry.request_id,
        prev_hash=entry.prev_hash if prev_hash is None else prev_hash,
    )


def canonical_fields(
    *,
    at: dt.datetime,
    action: str,
    actor: str,
    user_id: int | None,
    partner_id: int | None,
    object_type: str,
    object_id: str,
    details: Any,
    request_id: str,
    prev_hash: str,
) -> bytes:
    """`canonical` from plain values, so a verifier can skip building model instances."""
    content = {
        "at": at.astimezone(dt.UTC).isoformat(timespec="microseconds"),
        "action": action,
        "actor": actor,
        "user": user_id,
        "partner": partner_id,
        "object_type": object_type,
        "object_id": object_id,
        "details": details,
        "request_id": request_id,
        "prev_hash": prev_hash,
    }
    return json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def entry_hash(entry: AuditEntry) -> str:
    return hashlib.sha256(canonical(entry)).hexdigest()


def audit_record(
    *,
    action: str,
    actor: str,
    user_id: int | None = None,
    partner_id: int | None = None,
    object_type: str = "",
    object_id: str | int = "",
    details: dict[str, Any] | None = None,
    request_id: str = "",
) -> AuditEntry:
    """Append one entry to the chain, inside the caller's transaction.

    No savepoint: an audit write that fails must fail the action it records. Inside an
    `audit_deferred()` block the entry is queued and written with the block's others
    when the block ends (the returned object gets its id and hash then).
    """
    entry = entry_new(
        PendingEntry(
            action=action,
            actor=actor,
            user_id=user_id,
            partner_id=partner_id,
            object_type=object_type,
            object_id=object_id,
            details=details or {},
            request_id=request_id,
        ),
        at=timezone.now(),
    )
    queue = _deferred.get()
    if queue is not None:
        queue.append(entry)
    else:
        chain_append([entry])
    return entry


# The entries of the innermost open `audit_deferred()` block of this thread / task.
_deferred: ContextVar[list[AuditEntry] | None] = ContextVar("audit_deferred", default=None)


@contextlib.contextmanager
def audited_transaction() -> Iterator[None]:
    """`transaction.atomic()` whose audit entries and deferred inserts are written at its end.

    When it is the outermost block, its COMMIT goes in the same round trip as the chain
    append, so the chain's lock is released without waiting for this thread again
    (Django's own commit then finds the transaction committed and only runs the
    on_commit hooks). Nested in another transaction, it commits with that one as usual.
    """
    outermost = not connection.in_atomic_block
    with transaction.atomic(), audit_deferred(commit=outermost):
        yield


@contextlib.contextmanager
def audit_deferred(*, commit: bool = False) -> Iterator[None]:
    """Write the block's audit entries together at its end, still inside its transaction.

    Every writer holds the chain lock from its append until its commit, so the append
    should come last and be one statement: an intake that audits the incident and its
    share takes the lock once, just before committing, instead of early and twice. The
    block also defers the inserts nobody reads before the commit (`smartcity.sql.
    writes_deferred`): they go in the same round trip as the lock, ahead of it. If the
    block raises, nothing is written (and the transaction rolls back anyway). Nested
    blocks join the outermost one. `commit`: the append also commits the transaction
    (only for `audited_transaction`, which knows the block ends it).
    """
    if _deferred.get() is not None:
        yield
        return
    if not connection.in_atomic_block:
        raise RuntimeError("audit_deferred() must run inside transaction.atomic()")
    pending: list[AuditEntry] = []
    token = _deferred.set(pending)
    try:
        with writes_deferred() as writes:
            yield
    finally:
        _deferred.reset(token)
    if pending:
        entries_append_sealed(pending, before=writes, commit=commit)
    else:
        statements_run(writes)


@dataclass(frozen=True)
class PendingEntry:
    """What `audit_record_many` appends: the arguments of one `audit_record` call."""

    action: str
    actor: str
    user_id: int | None = None
    partner_id: int | None = None
    object_type: str = ""
    object_id: str | int = ""
    details: dict[str, Any] = field(default_factory=dict)
    request_id: str = ""


def audit_record_many(*, pending: Sequence[PendingEntry]) -> list[AuditEntry]:
    """Append several entries in one go, inside the caller's transaction.

    The same chain as calling `audit_record` once per entry, but one lock, one look-up
    of the previous hash and one COPY: a purge of 100,000 clips writes 100,000 entries.
    The returned entries carry no ids.
    """
    now = timezone.now()
    return chain_append([entry_new(item, at=now) for item in pending], ids=False)


def entry_new(item: PendingEntry, *, at: dt.datetime) -> AuditEntry:
    return AuditEntry(
        at=at,
        action=item.action,
        actor=item.actor,
        user_id=item.user_id,
        partner_id=item.partner_id,
        object_type=item.object_type,
        object_id=str(item.object_id),
        # JSON round trip so the hash covers exactly what the database will return.
        details=json.loads(json.dumps(item.details, default=str)),
        request_id=item.request_id,
    )


def chain_append(entries: list[AuditEntry], *, ids: bool = True) -> list[AuditEntry]:
    """Link `entries` after the chain's last entry and insert them, in order.

    The advisory lock serialises writers until their commit: no two transactions can
    both append after the same entry. It is taken in a statement of its own, so the
    look-up of the last hash that follows sees whatever the previous holder committed.
    With `ids` (every writer but the bulk ones) PostgreSQL links and hashes the entries
    in their INSERTs, in the lock's round trip (`entries_append_sealed`).
    `ids=False`: one COPY, hashed here, and the entries' ids are not read back (bulk writers).
    """
    if not entries:
        return []
    if ids:
        return entries_append_sealed(entries, before=[], commit=False)
    with transaction.atomic(savepoint=False):
        with connection.cursor() as cursor:
            # Two statements, one round trip (client-side binding sends them as one query);
            # each takes its own snapshot, so the look-up sees the previous holder's commit.
            cursor.execute(CHAIN_HEAD_SQL, [CHAIN_LOCK_KEY])
            cursor.nextset()
            last = cursor.fetchone()
        previous = last[0] if last else GENESIS_HASH
        for entry in entries:
            entry.prev_hash = previous
            entry.hash = previous = entry_hash(entry)
        entries_copy(entries)
        return entries


def entries_append_sealed(
    entries: list[AuditEntry], *, before: list[Statement], commit: bool
) -> list[AuditEntry]:
    """Lock, link, hash and insert `entries` in one round trip; PostgreSQL fills in the hashes.

    `before`: the transaction's deferred inserts, sent ahead of the lock; `commit`: the
    transaction's COMMIT, sent after the inserts (only when the caller's block ends it).
    """
    statements = [*before, (CHAIN_LOCK, [CHAIN_LOCK_KEY])]
    for entry in entries:
        head, tail = canonical_around_prev_hash(entry)
        statements.append((ENTRY_APPEND, [*entry_row(entry)[:-2], head, tail, GENESIS_HASH]))
    if commit:
        statements.append(("COMMIT", []))
    with transaction.atomic(savepoint=False), connection.cursor() as cursor:
        cursor.execute(statements_joined(cursor, statements))
        for _ in range(len(before) + 1):  # the deferred inserts' results, then the lock's
            cursor.nextset()
        for entry in entries:
            row = cursor.fetchone()
            assert row is not None  # INSERT … RETURNING of one row
            entry.pk, entry.prev_hash, entry.hash = row
            entry._state.adding = False
            entry._state.db = connection.alias
            cursor.nextset()
    return entries


def canonical_around_prev_hash(entry: AuditEntry) -> tuple[bytes, bytes]:
    """An entry's canonical bytes split where its `prev_hash` goes: before + prev_hash + after.

    Keys are sorted, so the top-level `"prev_hash":""` is the last one in the text (a
    key of that name inside `details` comes earlier; `request_id` and `user` come after,
    and a JSON string cannot contain an unescaped `"` to fake one).
    """
    whole = canonical(entry, prev_hash="")
    gap = whole.rindex(b'"prev_hash":""') + len(b'"prev_hash":"')
    return whole[:gap], whole[gap:]


CHAIN_LOCK_SQL = "SELECT pg_advisory_xact_lock(%s)"
CHAIN_HEAD_SQL = CHAIN_LOCK_SQL + "; SELECT hash FROM audit_auditentry ORDER BY id DESC LIMIT 1"  # noqa: S608


def entry_row(entry: AuditEntry) -> tuple[Any, ...]:
    """An entry's values in COPY_COLUMNS order."""
    return (
        entry.at,
        entry.action,
        entry.actor,
        entry.user_id,
        entry.partner_id,
        entry.object_type,
        entry.object_id,
        json.dumps(entry.details),
        entry.request_id,
        entry.prev_hash,
        entry.hash,
    )


COPY_COLUMNS = (
    "at",
    "action",
    "actor",
    "user_id",
    "partner_id",
    "object_type",
    "object_id",
    "details",
    "request_id",
    "prev_hash",
    "hash",
)


# One entry appended after the chain's head as PostgreSQL sees it in this statement (the
# previous holder's commit, or this transaction's previous INSERT), hashed exactly as
# `entry_hash` would: sha256 over the canonical bytes with the previous hash in the gap.
ENTRY_APPEND_SQL = f"""
INSERT INTO audit_auditentry ({", ".join(COPY_COLUMNS)})
SELECT %s::timestamptz, %s, %s, %s::integer, %s::bigint, %s, %s, %s::jsonb, %s, head.hash,
       encode(sha256(%s::bytea || convert_to(head.hash, 'UTF8') || %s::bytea), 'hex')
FROM (SELECT coalesce((SELECT hash FROM audit_auditentry ORDER BY id DESC LIMIT 1), %s) AS hash) AS head
RETURNING id, prev_hash, hash
"""  # noqa: S608 — fixed columns
# Both run in every audited write's last round trip: prepared once per connection.
CHAIN_LOCK = Prepared("smartcity_chain_lock", CHAIN_LOCK_SQL)
ENTRY_APPEND = Prepared("smartcity_entry_append", ENTRY_APPEND_SQL)


def entries_copy(entries: list[AuditEntry]) -> None:
    """INSERT the entries with one COPY, in list order, so ids follow the chain's order.

    Not bulk_create: for 1,000 entries Django's INSERT … UNNEST and psycopg's adaptation
    of its arrays cost as much as the database's own work (~150 of ~300 ms measured).
    """
    table = connection.ops.quote_name(AuditEntry._meta.db_table)
    with (
        connection.cursor() as cursor,
        cursor.cursor.copy(f"COPY {table} ({', '.join(COPY_COLUMNS)}) FROM STDIN") as copy,
    ):
        for entry in entries:
            copy.write_row(entry_row(entry))
