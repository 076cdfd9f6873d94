"""Writing the audit log.

Every entry's hash covers its own content and the previous entry's hash, so changing,
removing or reordering any entry breaks the chain from there on (`audit_verify`).
Writers are serialised by a transaction-scoped advisory lock: two transactions can
never both append after the same entry, and the lock is released at commit/rollback.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from audit.models import AuditEntry

GENESIS_HASH = "0" * 64
CHAIN_LOCK_KEY = 0x5AFE_7E7  # any constant shared by every writer


def canonical(entry: AuditEntry) -> bytes:
    """The bytes an entry's hash covers: every field that means something, in a fixed form."""
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
        prev_hash=entry.prev_hash,
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

    No savepoint: an audit write that fails must fail the action it records.
    """
    with transaction.atomic(savepoint=False):
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [CHAIN_LOCK_KEY])
        previous = AuditEntry.objects.order_by("-id").values_list("hash", flat=True).first()
        entry = AuditEntry(
            at=timezone.now(),
            action=action,
            actor=actor,
            user_id=user_id,
            partner_id=partner_id,
            object_type=object_type,
            object_id=str(object_id),
            details=details or {},
            request_id=request_id,
            prev_hash=previous or GENESIS_HASH,
        )
        # JSON round trip so the hash covers exactly what the database will return.
        entry.details = json.loads(json.dumps(entry.details, default=str))
        entry.hash = entry_hash(entry)
        entry.save(force_insert=True)
    return entry


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
    of the previous hash and one INSERT: a purge of 100,000 clips writes 100,000 entries.
    """
    if not pending:
        return []
    with transaction.atomic(savepoint=False):
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [CHAIN_LOCK_KEY])
        previous = AuditEntry.objects.order_by("-id").values_list("hash", flat=True).first() or GENESIS_HASH
        now = timezone.now()
        entries = []
        for item in pending:
            entry = AuditEntry(
                at=now,
                action=item.action,
                actor=item.actor,
                user_id=item.user_id,
                partner_id=item.partner_id,
                object_type=item.object_type,
                object_id=str(item.object_id),
                details=json.loads(json.dumps(item.details, default=str)),
                request_id=item.request_id,
                prev_hash=previous,
            )
            entry.hash = previous = entry_hash(entry)
            entries.append(entry)
        # bulk_create inserts in list order, so ids follow the chain's order.
        return AuditEntry.objects.bulk_create(entries, batch_size=1000)
