"""`smartcity.sql.instance_insert`: the intake's hot rows written as `save()` would write them."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.contrib.gis.geos import Point
from django.db import IntegrityError, NotSupportedError, ProgrammingError, connection, models, transaction
from django.utils import timezone

from cameras.selectors import make_point
from incidents.models import Incident
from partners.models import Agreement, Partner, Share
from smartcity.sql import (
    Prepared,
    insert_statement,
    instance_insert,
    instance_insert_soon,
    rows_insert_soon,
    statements_run,
    writes_deferred,
)

pytestmark = pytest.mark.django_db


def stored(instance: models.Model) -> dict[str, Any]:
    """Every column of the row as read back from the database (ids and timestamps left out)."""
    model = type(instance)
    row = model.objects.values().get(pk=instance.pk)  # type: ignore[attr-defined]
    skip = {"id", "received_at", "updated_at", "created_at"}
    return {name: value for name, value in row.items() if name not in skip}


def incident_of(partner: Partner, external_id: str) -> Incident:
    return Incident(
        partner=partner,
        external_id=external_id,
        type="police.emergency_video",
        priority=1,
        location=make_point(lat=37.5663, lon=126.9779),
        accuracy_m=12.5,
        address="서울특별시 중구 세종대로 110",
        summary="강도 신고",
        subject={"name": "홍길동", "track": [1, 2]},
        occurred_at=dt.datetime(2026, 12, 4, 1, 2, 3, tzinfo=dt.UTC),
    )


def share_of(incident: Incident, agreement: Agreement, nonce: str, **extra: Any) -> Share:
    now = timezone.now()
    return Share(
        incident=incident,
        partner=incident.partner,
        agreement=agreement,
        event_type=incident.type,
        legal_basis="basis",
        token_nonce=nonce,
        token_hash=nonce * 2,
        **{"starts_at": now, "expires_at": now + dt.timedelta(minutes=30), **extra},
    )


def test_an_incident_inserted_directly_reads_back_as_one_saved_by_the_orm():
    partner = Partner.objects.create(slug="p", name="P", kind="police")
    saved, direct = incident_of(partner, "a"), incident_of(partner, "b")
    saved.save()
    before = timezone.now()

    instance_insert(direct)

    assert direct.pk is not None and direct.pk != saved.pk
    assert not direct._state.adding
    assert stored(direct) == {**stored(saved), "external_id": "b"}
    row = Incident.objects.get(pk=direct.pk)
    assert row.status == "new" and row.location == direct.location  # the model's default, the point
    assert before <= row.received_at == direct.received_at <= timezone.now()  # auto_now_add, as save()


def test_a_share_inserted_directly_reads_back_as_one_saved_by_the_orm():
    partner = Partner.objects.create(slug="p", name="P", kind="police")
    agreement = Agreement.objects.create(partner=partner, title="t", valid_from=dt.date(2024, 1, 1))
    incident = incident_of(partner, "a")
    incident.save()
    now = timezone.now()

    same = {"purpose": "purpose", "starts_at": now, "expires_at": now + dt.timedelta(minutes=30)}
    saved, direct = share_of(incident, agreement, "n1", **same), share_of(incident, agreement, "n2", **same)
    saved.save()
    instance_insert(direct)

    expected = {**stored(saved), "token_nonce": "n2", "token_hash": "n2n2"}
    assert stored(direct) == expected
    assert Share.objects.get(pk=direct.pk).follows_subject is True  # the model's default


def test_a_duplicate_fails_like_save_and_leaves_nothing():
    partner = Partner.objects.create(slug="p", name="P", kind="police")
    instance_insert(incident_of(partner, "same"))

    with pytest.raises(IntegrityError), transaction.atomic():
        instance_insert(incident_of(partner, "same"))

    assert Incident.objects.filter(external_id="same").count() == 1


def test_every_column_of_the_model_is_written():
    statement, fields = insert_statement(Incident)

    written = {field.column for field in fields}
    assert written == {field.column for field in Incident._meta.concrete_fields} - {"id"}
    assert statement.prepare_sql.endswith('RETURNING "id"')


def test_a_point_in_another_srid_is_refused_rather_than_stored_wrong():
    partner = Partner.objects.create(slug="p", name="P", kind="police")
    incident = incident_of(partner, "a")
    incident.location = Point(14_135_000, 4_518_000, srid=3857)  # Seoul in web Mercator

    with pytest.raises(ValueError, match="location"):
        instance_insert(incident)

    assert not Incident.objects.exists()


def test_a_key_drawn_with_an_insert_is_used_later_and_never_handed_out_again():
    partner = Partner.objects.create(slug="p", name="P", kind="police")
    agreement = Agreement.objects.create(partner=partner, title="t", valid_from=dt.date(2024, 1, 1))
    incident = incident_of(partner, "a")

    with transaction.atomic(), writes_deferred() as queued:
        (share_id,) = instance_insert(incident, reserve=(Share,))
        share = share_of(incident, agreement, "n1", id=share_id)
        instance_insert_soon(share)
        assert not Share.objects.exists()  # queued, not written
        statements_run(queued)

    assert Share.objects.get().pk == share_id == share.pk
    assert Share.objects.get().incident_id == incident.pk
    after = share_of(incident, agreement, "n2")
    after.save()
    assert after.pk > share_id  # the sequence moved on: no later row can take the drawn key


def test_a_deferred_insert_needs_its_key_drawn_first():
    partner = Partner.objects.create(slug="p", name="P", kind="police")

    with pytest.raises(ValueError, match="draw its primary key"):
        instance_insert_soon(incident_of(partner, "a"))


def test_queued_statements_with_many_values_between_them_store_each_value_exactly():
    """The intake's last round trip carries ~60 values over several statements, each
    bound on its own: quotes, percent signs, placeholders and backslashes arrive intact."""
    partner = Partner.objects.create(slug="p", name="P", kind="police")
    incident = incident_of(partner, "a")
    incident.save()
    texts = ["it's", "100 %", "%s and %(x)s", "back\\slash", "줄\n바꿈", "", "--", "'; DROP TABLE x; --"]
    texts += [f"plain {n}" for n in range(12 - len(texts))]
    sql = (
        "INSERT INTO incidents_timelineentry (incident_id, at, kind, actor, text, partner_visible)"
        " VALUES (%s, %s, %s, %s, %s, %s)"
    )
    at = timezone.now()

    with transaction.atomic(), writes_deferred() as queued:
        for text in texts:
            rows_insert_soon(sql, [incident.pk, at, "note", "tester", text, False])
        assert sum(len(params) for _, params in queued) > 50  # more than psycopg parses once
        statements_run(queued)

    stored_texts = list(incident.timeline.order_by("id").values_list("text", flat=True))
    assert stored_texts == texts


PARTNER_BY_SLUG = Prepared(
    "test_partner_by_slug",
    "SELECT slug, name FROM partners_partner WHERE slug = %(slug)s OR name LIKE %(name)s || '%%'",
    ("slug", "name"),
)


def test_a_prepared_read_answers_as_the_plain_one_on_every_connection_and_after_a_rollback():
    Partner.objects.create(slug="p", name="Police 112", kind="police")
    Partner.objects.create(slug="f", name="Fire 119", kind="fire")

    with connection.cursor() as cursor:
        cursor.execute(PARTNER_BY_SLUG.ready(cursor), {"slug": "p", "name": "Fire"})
        first = sorted(cursor.fetchall())
        cursor.execute(PARTNER_BY_SLUG.ready(cursor), {"slug": "nobody", "name": "Pol"})  # EXECUTE only
        second = cursor.fetchall()

    assert first == [("f", "Fire 119"), ("p", "Police 112")]
    assert second == [("p", "Police 112")]
    # A statement first prepared in a block that rolls back stays prepared (PREPARE is
    # not transactional), so the record of it stays true.
    names = Prepared(
        "test_partner_names", "SELECT name FROM partners_partner WHERE kind = %(kind)s", ("kind",)
    )
    with pytest.raises(IntegrityError), transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(names.ready(cursor), {"kind": "fire"})
        Partner.objects.create(slug="p", name="again", kind="police")
    with connection.cursor() as cursor:
        cursor.execute(names.ready(cursor), {"kind": "fire"})  # EXECUTE only
        assert cursor.fetchall() == [("Fire 119",)]


def test_a_statement_that_fails_to_prepare_is_not_taken_for_prepared():
    broken = Prepared(
        "test_broken", "SELECT no_such_column FROM partners_partner WHERE slug = %(slug)s", ("slug",)
    )

    for _ in range(2):  # the second try prepares again, and fails the same way
        with (
            pytest.raises(ProgrammingError, match="no_such_column"),
            transaction.atomic(),
            connection.cursor() as cursor,
        ):
            broken.ready(cursor)


def test_placeholders_other_than_the_named_ones_are_refused():
    with pytest.raises(ValueError, match="placeholders"):
        Prepared("test_positional", "SELECT 1 WHERE 1 = %s", ("one",))
    with pytest.raises(ValueError, match="placeholders"):
        Prepared("test_missing", "SELECT %(a)s", ("a", "b"))


def test_a_statement_refused_after_a_migration_changed_its_result_is_prepared_again():
    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE test_prepared_shape (id integer, label varchar(10))")
        cursor.execute("INSERT INTO test_prepared_shape VALUES (1, 'a')")
    shape = Prepared(
        "test_prepared_shape", "SELECT label FROM test_prepared_shape WHERE id = %(id)s", ("id",)
    )
    with connection.cursor() as cursor:
        cursor.execute(shape.ready(cursor), {"id": 1})
        assert cursor.fetchall() == [("a",)]
        cursor.execute("ALTER TABLE test_prepared_shape ALTER COLUMN label TYPE text")  # a migration

    # PostgreSQL refuses the old plan once: that request fails...
    with (
        pytest.raises(NotSupportedError, match="result type"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute(shape.ready(cursor), {"id": 1})
    # ...and the next one prepares it again, under a new name, and works.
    with connection.cursor() as cursor:
        cursor.execute(shape.ready(cursor), {"id": 1})
        assert cursor.fetchall() == [("a",)]
