"""The provision ledger (관리대장): who may see it, which rows it has, filters, CSV."""

from __future__ import annotations

import csv
import datetime as dt
import io
from zoneinfo import ZoneInfo

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth import get_user_model
from django.db import connections
from django.test import AsyncClient, Client

from audit.models import AuditEntry
from audit.services import audit_record
from cameras.models import StaffProfile, StaffRole
from tests.incidents.conftest import incident_at
from tests.partners.conftest import partner_with_agreement

SEOUL = ZoneInfo("Asia/Seoul")
HEADER = ["번호", "구분", "일시", "파일 또는 카메라", "담당자", "목적", "수령자", "근거", "형태", "기간"]


def staff(username: str, role: str, center=None):
    user = get_user_model().objects.create_user(username, password="pw-long-enough-123")
    StaffProfile.objects.create(user=user, role=role, center=center)
    return user


def logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def world(db, center_factory, camera_factory):
    centre = center_factory("centre-a", (126.96, 37.54, 127.03, 37.58))
    cam1 = camera_factory(lat=37.5663, lon=126.9779, center=centre, code="SEOUL-001", name="시청앞")
    cam2 = camera_factory(lat=37.5665, lon=126.9780, center=centre, code="SEOUL-002", name="광장")
    police = partner_with_agreement("police-112", "police")
    incident = incident_at(centre, partner=police)
    operator = staff("op-a", StaffRole.OPERATOR, centre)
    return {
        "centre": centre,
        "cams": (cam1, cam2),
        "police": police,
        "incident": incident,
        "operator": operator,
    }


def write_activity(world) -> dict[str, AuditEntry]:
    """One of each kind of entry the ledger knows, plus some it must leave out."""
    cam1, cam2 = world["cams"]
    incident, op = world["incident"], world["operator"]
    e: dict[str, AuditEntry] = {}
    e["view"] = audit_record(
        action="video.view_start",
        actor="user:op-a",
        user_id=op.pk,
        object_type="camera",
        object_id=cam1.pk,
        details={"incident_id": incident.pk},
    )
    e["login"] = audit_record(action="auth.login", actor="user:op-a", user_id=op.pk)
    e["view_stop"] = audit_record(
        action="video.view_stop",
        actor="user:op-a",
        object_type="camera",
        object_id=cam1.pk,
        details={"duration_s": 12.5},
    )
    e["granted"] = audit_record(
        action="share.granted",
        actor="user:op-a",
        object_type="share",
        object_id=7,
        details={
            "incident_id": incident.pk,
            "event_type": "police.emergency_video",
            "partner": "police-112",
            "camera_ids": [cam1.pk, cam2.pk],
            "reason": "agreement allows",
            "legal_basis": "개인정보 보호법 제18조제2항제7호",
            "expires_at": "2026-11-22T14:00:00+09:00",
            "purpose": "강도 사건 현장 확인",
        },
    )
    e["refused"] = audit_record(
        action="share.refused",
        actor="system",
        object_type="incident",
        object_id=incident.pk,
        details={"incident_id": incident.pk, "partner": "police-112", "reason": "no video for this type"},
    )
    clip = {
        "camera_id": cam2.pk,
        "incident_id": incident.pk,
        "file": "2026/11/22/clip-5-SEOUL-002.mp4",
        "sha256": "ab" * 32,
        "period_start": "2026-11-22T04:00:00+00:00",
        "period_end": "2026-11-22T04:00:30+00:00",
    }
    e["staff_download"] = audit_record(
        action="clip.downloaded",
        actor="user:op-a",
        user_id=op.pk,
        object_type="clip",
        object_id=5,
        details=clip,
    )
    e["partner_download"] = audit_record(
        action="clip.downloaded",
        actor="partner:police-112",
        partner_id=world["police"].pk,
        object_type="clip",
        object_id=5,
        details={**clip, "partner": "police-112", "share_id": 7},
    )
    e["destroyed"] = audit_record(
        action="clip.destroyed",
        actor="system",
        object_type="clip",
        object_id=5,
        details={**clip, "reason": "retention period ended"},
    )
    return e


def csv_rows(response) -> list[list[str]]:
    body = b"".join(response.streaming_content).decode("utf-8")
    assert body.startswith("\ufeff")
    return list(csv.reader(io.StringIO(body[1:])))


# -- access ---------------------------------------------------------------------------


def test_only_privacy_officers_and_admins_see_the_ledger(world, client):
    assert client.get("/audit/ledger/").status_code == 302
    assert "/login/" in client.get("/audit/ledger/")["Location"]
    assert logged_in(world["operator"]).get("/audit/ledger/").status_code == 403
    assert logged_in(world["operator"]).get("/audit/ledger/?format=csv").status_code == 403
    assert (
        logged_in(staff("sup", StaffRole.SUPERVISOR, world["centre"])).get("/audit/ledger/").status_code
        == 403
    )
    assert logged_in(staff("privacy", StaffRole.PRIVACY_OFFICER)).get("/audit/ledger/").status_code == 200
    assert logged_in(staff("boss", StaffRole.ADMIN)).get("/audit/ledger/").status_code == 200


# -- rows -----------------------------------------------------------------------------


def test_csv_has_the_korean_columns_a_bom_and_one_row_per_use(world):
    entries = write_activity(world)
    client = logged_in(staff("privacy", StaffRole.PRIVACY_OFFICER))

    response = client.get("/audit/ledger/?format=csv")

    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response.streaming
    rows = csv_rows(response)
    assert rows[0] == HEADER
    by_number = {int(row[0]): dict(zip(HEADER, row, strict=True)) for row in rows[1:]}
    expected = {"view", "granted", "staff_download", "partner_download", "destroyed"}
    assert set(by_number) == {entries[k].pk for k in expected}  # no logins, stops or refusals

    view = by_number[entries["view"].pk]
    incident = world["incident"]
    assert (view["구분"], view["형태"], view["담당자"]) == ("열람", "실시간", "op-a")
    assert view["파일 또는 카메라"] == "SEOUL-001 시청앞"
    assert view["근거"] == f"police.emergency_video #{incident.pk}"
    start = entries["view"].at.astimezone(SEOUL)
    assert view["일시"] == start.strftime("%Y-%m-%d %H:%M:%S")
    assert view["기간"] == f"{start:%Y-%m-%d %H:%M:%S} – {entries['view_stop'].at.astimezone(SEOUL):%H:%M:%S}"

    granted = by_number[entries["granted"].pk]
    assert (granted["구분"], granted["형태"], granted["수령자"]) == ("제공", "실시간", world["police"].name)
    assert granted["파일 또는 카메라"] == "SEOUL-001 시청앞, SEOUL-002 광장"
    assert granted["목적"] == "강도 사건 현장 확인"
    assert granted["근거"] == f"개인정보 보호법 제18조제2항제7호 · police.emergency_video #{incident.pk}"
    assert granted["기간"].endswith("14:00:00")

    staff_dl = by_number[entries["staff_download"].pk]
    assert (staff_dl["구분"], staff_dl["형태"], staff_dl["수령자"]) == ("열람", "녹화영상", "")
    assert staff_dl["파일 또는 카메라"] == "clip-5-SEOUL-002.mp4 (SEOUL-002 광장)"
    assert staff_dl["기간"] == "2026-11-22 13:00:00 – 13:00:30"

    partner_dl = by_number[entries["partner_download"].pk]
    assert (partner_dl["구분"], partner_dl["수령자"]) == ("제공", world["police"].name)

    destroyed = by_number[entries["destroyed"].pk]
    assert (destroyed["구분"], destroyed["담당자"], destroyed["목적"]) == (
        "파기",
        "system",
        "retention period ended",
    )


def test_a_viewing_still_open_says_so(world):
    write_activity(world)
    cam2 = world["cams"][1]
    audit_record(action="video.view_start", actor="user:op-b", object_type="camera", object_id=cam2.pk)

    rows = csv_rows(logged_in(staff("privacy", StaffRole.PRIVACY_OFFICER)).get("/audit/ledger/?format=csv"))

    assert rows[-1][9].endswith("(열람 중)")


def test_the_export_itself_is_audited(world):
    logged_in(staff("privacy", StaffRole.PRIVACY_OFFICER)).get("/audit/ledger/?format=csv&kind=provide")

    entry = AuditEntry.objects.get(action="ledger.exported")
    assert (entry.actor, entry.details["filters"]) == ("user:privacy", {"kind": "provide"})


def test_cells_that_excel_would_run_as_formulas_are_kept_as_text(world):
    audit_record(
        action="share.granted",
        actor="user:op-a",
        object_type="share",
        object_id=1,
        details={"partner": "police-112", "purpose": '=HYPERLINK("http://evil")', "camera_ids": []},
    )

    rows = csv_rows(logged_in(staff("privacy", StaffRole.PRIVACY_OFFICER)).get("/audit/ledger/?format=csv"))

    assert rows[1][5] == '\'=HYPERLINK("http://evil")'


# -- filters --------------------------------------------------------------------------


def numbers(client, query: str) -> set[int]:
    return {int(row[0]) for row in csv_rows(client.get(f"/audit/ledger/?format=csv&{query}"))[1:]}


def test_filters_by_kind_partner_camera_and_incident(world, camera_factory):
    e = write_activity(world)
    other = audit_record(
        action="video.view_start",
        actor="user:op-a",
        object_type="camera",
        object_id=camera_factory(lat=37.56, lon=126.97).pk,
    )
    client = logged_in(staff("privacy", StaffRole.PRIVACY_OFFICER))
    cam1, cam2 = world["cams"]

    assert numbers(client, "kind=view") == {e["view"].pk, e["staff_download"].pk, other.pk}
    assert numbers(client, "kind=provide") == {e["granted"].pk, e["partner_download"].pk}
    assert numbers(client, "kind=destroy") == {e["destroyed"].pk}
    assert numbers(client, "partner=police-112") == {e["granted"].pk, e["partner_download"].pk}
    assert numbers(client, f"camera={cam1.pk}") == {e["view"].pk, e["granted"].pk}
    assert numbers(client, f"camera={cam2.pk}&kind=destroy") == {e["destroyed"].pk}
    assert other.pk not in numbers(client, f"incident={world['incident'].pk}")
    assert e["view"].pk in numbers(client, f"incident={world['incident'].pk}")


def test_date_range_is_in_seoul_time(world, monkeypatch):
    cam1 = world["cams"][0]
    # 23:30 on the 21st in Seoul is 14:30 UTC on the 21st; 00:30 on the 22nd is 15:30 UTC on the 21st.
    late = dt.datetime(2026, 11, 21, 23, 30, tzinfo=SEOUL)
    early = dt.datetime(2026, 11, 22, 0, 30, tzinfo=SEOUL)
    made = []
    for moment in (late, early):
        monkeypatch.setattr("audit.services.timezone.now", lambda moment=moment: moment)
        made.append(
            audit_record(action="video.view_start", actor="user:x", object_type="camera", object_id=cam1.pk)
        )
    monkeypatch.undo()
    client = logged_in(staff("privacy", StaffRole.PRIVACY_OFFICER))

    assert numbers(client, "date_from=2026-11-21&date_to=2026-11-21") == {made[0].pk}
    assert numbers(client, "date_from=2026-11-22&date_to=2026-11-22") == {made[1].pk}
    assert numbers(client, "date_from=2026-11-21&date_to=2026-11-22") == {m.pk for m in made}


@pytest.mark.parametrize(
    "query",
    [
        "date_from=yesterday",
        "date_from=2026-13-01",
        "kind=steal",
        "camera=-1",
        "camera=abc",
        "incident=1e9999",
        "date_from=2026-11-22&date_to=2026-11-01",
        "partner=not a slug",
    ],
)
def test_bad_filters_are_400(world, query):
    client = logged_in(staff("privacy", StaffRole.PRIVACY_OFFICER))

    assert client.get(f"/audit/ledger/?{query}").status_code == 400
    response = client.get(f"/audit/ledger/?format=csv&{query}")
    assert response.status_code == 400
    assert response.json()["errors"]


# -- the page -------------------------------------------------------------------------


def test_the_page_is_paginated_with_filters_kept(world, settings, django_assert_max_num_queries):
    settings.LEDGER_PAGE_SIZE = 2
    for _ in range(5):
        write_activity(world)
    client = logged_in(staff("privacy", StaffRole.PRIVACY_OFFICER))

    with django_assert_max_num_queries(15):
        response = client.get("/audit/ledger/?kind=view&page=2")

    assert response.status_code == 200
    html = response.content.decode()
    assert "kind=view&amp;page=3" in html
    assert "format=csv" in html
    assert "SEOUL-001" in html
    assert response.context["page"].paginator.count == 10


# -- streaming ------------------------------------------------------------------------


def test_large_ranges_stream_in_chunks_with_a_fixed_number_of_queries_each(
    world, django_assert_max_num_queries
):
    cam1 = world["cams"][0]
    for i in range(2500):
        audit_record(
            action="video.view_start", actor=f"user:op{i % 7}", object_type="camera", object_id=cam1.pk
        )
    client = logged_in(staff("privacy", StaffRole.PRIVACY_OFFICER))

    response = client.get("/audit/ledger/?format=csv")
    with django_assert_max_num_queries(4 * 4):  # 3 chunks of 1000 + the empty end: ≤ 4 queries each
        pieces = list(response.streaming_content)  # type: ignore[attr-defined]

    assert len(pieces) == 4  # header, then one piece per chunk of 1,000 rows
    assert sum(piece.count(b"\n") for piece in pieces) == 2501


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_under_asgi_the_csv_is_an_async_stream(world):
    privacy = await sync_to_async(staff)("privacy", StaffRole.PRIVACY_OFFICER)
    await sync_to_async(write_activity)(world)
    client = AsyncClient()
    await client.aforce_login(privacy)

    response = await client.get("/audit/ledger/?format=csv")

    assert response.status_code == 200
    assert response.is_async  # type: ignore[attr-defined]
    body = b"".join([piece async for piece in response.streaming_content]).decode()  # type: ignore[attr-defined]
    assert body.startswith("\ufeff번호,구분,일시")
    assert body.count("\n") == 6
    await sync_to_async(connections.close_all)()
