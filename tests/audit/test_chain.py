"""The audit chain: the database refuses changes, and `audit_verify` finds any change made behind its back."""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from django.core.management import call_command
from django.db import DatabaseError, connection, connections, transaction

from audit.models import AuditEntry
from audit.services import PendingEntry, audit_record, audit_record_many
from audit.verify import audit_chain_verify


def write_entries(n: int) -> list[AuditEntry]:
    return [
        audit_record(
            action="video.view_start",
            actor=f"user:op{i}",
            object_type="camera",
            object_id=i,
            details={"n": i, "note": "열람", "nested": {"a": [1, 2.5, None]}},
            request_id=f"req-{i}",
        )
        for i in range(n)
    ]


def verify() -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command("audit_verify", "--chunk-size=2", stdout=out, stderr=err)
    except SystemExit as exit_:
        return int(exit_.code or 0), out.getvalue(), err.getvalue()
    return 0, out.getvalue(), err.getvalue()


def behind_the_trigger(sql: str, params: list[Any]) -> None:
    """Change the table as an attacker with superuser rights would: triggers off for this transaction."""
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL session_replication_role = replica")
        cursor.execute(sql, params)
        cursor.execute("SET LOCAL session_replication_role = origin")


@pytest.fixture
def chain(db) -> list[AuditEntry]:
    return write_entries(6)


def test_an_intact_chain_passes_and_prints_the_count(chain):
    code, out, _ = verify()

    assert code == 0
    assert "6 entries" in out
    assert chain[-1].hash in out


def test_an_empty_log_is_intact(db):
    assert verify()[0] == 0


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("action", "video.view_stop"),
        ("actor", "user:someone-else"),
        ("object_id", "999"),
        ("object_type", "clip"),
        ("request_id", "forged"),
        ("details", '{"n": 2, "note": "열람", "nested": {"a": [1, 2.5, null]}, "extra": 1}'),
        ("at", "2001-01-01T00:00:00Z"),
        ("hash", "f" * 64),
        ("prev_hash", "e" * 64),
    ],
)
def test_tampering_with_any_field_fails_at_that_entry(chain, column, value):
    target = chain[2]
    behind_the_trigger(f"UPDATE audit_auditentry SET {column} = %s WHERE id = %s", [value, target.pk])  # noqa: S608 (fixed column names)

    code, _, err = verify()

    assert code == 1
    assert f"#{target.pk}" in err
    assert "2 entries before it are intact" in err


def test_tampering_with_the_user_fails_at_that_entry(chain, django_user_model):
    someone = django_user_model.objects.create_user("someone")
    behind_the_trigger("UPDATE audit_auditentry SET user_id = %s WHERE id = %s", [someone.pk, chain[4].pk])

    report = audit_chain_verify(chunk_size=3)

    assert report.bad_entry_id == chain[4].pk
    assert "altered" in report.problem


def test_deleting_an_entry_fails_at_the_one_after_it(chain):
    behind_the_trigger("DELETE FROM audit_auditentry WHERE id = %s", [chain[3].pk])

    code, _, err = verify()

    assert code == 1
    assert f"#{chain[4].pk}" in err
    assert "removed or reordered" in err


def test_deleting_the_first_entry_fails_at_the_new_first(chain):
    behind_the_trigger("DELETE FROM audit_auditentry WHERE id = %s", [chain[0].pk])

    report = audit_chain_verify()

    assert report.bad_entry_id == chain[1].pk
    assert "first entry" in report.problem


def test_swapping_two_entries_fails_at_the_first_of_them(chain):
    a, b = chain[1], chain[3]
    columns = [
        "at",
        "action",
        "actor",
        "object_type",
        "object_id",
        "details",
        "request_id",
        "prev_hash",
        "hash",
    ]
    rows = {e.pk: AuditEntry.objects.filter(pk=e.pk).values_list(*columns).get() for e in (a, b)}
    # Two ids exchange everything they carry: the order of the log changes, nothing else.
    # (The hash column is unique, so b's hash moves out of the way first.)
    assignments = ", ".join(f"{c} = %s" for c in columns)
    behind_the_trigger("UPDATE audit_auditentry SET hash = %s WHERE id = %s", ["0" * 64, b.pk])
    for target, source in ((a, b), (b, a)):
        values = [
            json.dumps(v) if c == "details" else v for c, v in zip(columns, rows[source.pk], strict=True)
        ]
        behind_the_trigger(f"UPDATE audit_auditentry SET {assignments} WHERE id = %s", [*values, target.pk])  # noqa: S608
    assert AuditEntry.objects.get(pk=a.pk).hash == b.hash  # the swap happened

    report = audit_chain_verify()

    assert report.bad_entry_id == a.pk


def test_the_database_refuses_update_and_delete(chain):
    entry = chain[0]
    for attempt in (
        lambda: AuditEntry.objects.filter(pk=entry.pk).update(actor="user:forger"),
        lambda: AuditEntry.objects.filter(pk=entry.pk).delete(),
    ):
        with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
            attempt()
    with (
        pytest.raises(DatabaseError, match="append-only"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute("DELETE FROM audit_auditentry")
    assert AuditEntry.objects.get(pk=entry.pk).actor == entry.actor


def test_entries_written_in_bulk_continue_the_same_chain(chain):
    audit_record_many(
        pending=[
            PendingEntry(action="clip.destroyed", actor="system", object_type="clip", object_id=n)
            for n in range(5)
        ]
    )
    audit_record(action="auth.login", actor="user:op")

    report = audit_chain_verify(chunk_size=4)

    assert report.intact
    assert report.checked == 12


@pytest.fixture
def committed_log(transactional_db) -> Iterator[None]:
    yield
    # transactional_db truncates afterwards; TRUNCATE is not DELETE, the trigger allows it.


def test_concurrent_writers_keep_one_unbroken_chain(committed_log):
    writers, per_writer = 6, 15
    barrier = threading.Barrier(writers)
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        try:
            barrier.wait()
            for i in range(per_writer):
                # Each in its own transaction, some with several entries, all racing.
                with transaction.atomic():
                    audit_record(action="test.write", actor=f"writer:{n}", details={"i": i})
                    if i % 3 == 0:
                        audit_record(
                            action="test.write", actor=f"writer:{n}", details={"i": i, "second": True}
                        )
        except BaseException as exc:
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    assert not errors
    report = audit_chain_verify(chunk_size=7)
    assert report.intact, report.problem
    assert report.checked == writers * (per_writer + 5)


def test_deferred_entries_are_written_together_at_the_end_of_the_block(db):
    from audit.services import audit_deferred

    with transaction.atomic(), audit_deferred():
        first = audit_record(action="test.first", actor="system")
        with audit_deferred():  # nested blocks join the outer one
            audit_record(action="test.second", actor="system")
        assert not AuditEntry.objects.exists(), "nothing written before the block ends"

    entries = list(AuditEntry.objects.order_by("id"))
    assert [e.action for e in entries] == ["test.first", "test.second"]
    assert first.pk == entries[0].pk and first.hash == entries[0].hash
    assert entries[1].prev_hash == entries[0].hash
    assert audit_chain_verify().intact


def test_a_deferred_block_that_fails_writes_no_entry(db):
    from audit.services import audit_deferred

    with pytest.raises(ValueError), transaction.atomic(), audit_deferred():
        audit_record(action="test.lost", actor="system")
        raise ValueError("the action failed")

    assert not AuditEntry.objects.filter(action="test.lost").exists()


def test_deferring_outside_a_transaction_is_refused(transactional_db):
    from audit.services import audit_deferred

    with pytest.raises(RuntimeError), audit_deferred():
        pass


@pytest.mark.parametrize(
    "details, request_id",
    [
        ({"prev_hash": "", "x": '"prev_hash":""'}, 'r"prev_hash":""'),
        ({"파일": "clip.mp4", "sha256": "a" * 64, "emoji": "🚨", "ctl": "\x01\n\t"}, ""),
        ({"nested": {"prev_hash": "0" * 64}, "float": 1e-7, "big": 2**62}, "req-\\"),
    ],
)
def test_postgresql_hashes_each_entry_exactly_as_the_verifier_does(db, details, request_id):
    # PostgreSQL fills in the previous hash and hashes the bytes built here; any
    # difference from Python's canonical form would break the chain at this entry.
    written = [
        audit_record(action="test.hash", actor="test", details=details, request_id=request_id),
        audit_record(action="test.hash", actor="test", details={}, request_id=request_id),
    ]

    report = audit_chain_verify()

    assert report.intact, report.problem
    assert written[1].prev_hash == written[0].hash
    assert [entry.hash for entry in written] == list(
        AuditEntry.objects.order_by("id").values_list("hash", flat=True)
    )[-2:]
