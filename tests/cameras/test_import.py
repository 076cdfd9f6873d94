"""`import_cameras` against real PostGIS, with the sample files in tests/data."""

from __future__ import annotations

import io
import re
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext

from cameras import services
from cameras.importers import coordinates, positive_int, purpose_from_text, stable_code, year_month
from cameras.models import Camera, CameraPurpose, CameraStatus

DATA = Path(__file__).resolve().parent.parent / "data"
STANDARD_CSV = DATA / "cctv_standard_utf8.csv"
HEADER = "관리기관명,소재지도로명주소,소재지지번주소,설치목적구분,보관일수,WGS84위도,WGS84경도"
# Boxes (lon0, lat0, lon1, lat1) around the sample cameras of Seoul Jung-gu and Anyang.
JUNGGU = (126.95, 37.54, 127.03, 37.58)
ANYANG = (126.88, 37.36, 127.00, 37.45)


def run_import(*args: object) -> str:
    out = io.StringIO()
    call_command("import_cameras", *(str(arg) for arg in args), stdout=out)
    return out.getvalue()


def table_snapshot() -> list[tuple[object, ...]]:
    return list(Camera.objects.order_by("code").values_list("code", "name", "retention_days", "center_id"))


def write_csv(path: Path, lines: list[str], *, encoding: str = "utf-8") -> Path:
    path.write_bytes("\n".join(lines).encode(encoding))
    return path


# --- encodings and formats ---------------------------------------------------------


@pytest.mark.django_db
def test_utf8_csv_without_bom_imports_every_row_with_its_fields():
    output = run_import(STANDARD_CSV)

    assert Camera.objects.count() == 12
    assert "Read 12 rows (CSV, UTF-8)." in output
    assert "Imported 12 cameras: 12 created, 0 updated." in output
    camera = Camera.objects.get(address="서울특별시 중구 세종대로 110")
    assert re.fullmatch(r"KR-[0-9a-f]{16}", camera.code)
    assert camera.name == "서울특별시 중구청 생활방범 서울특별시 중구 세종대로 110"
    assert camera.purpose == CameraPurpose.CRIME_PREVENTION
    assert (camera.location.y, camera.location.x) == pytest.approx((37.566295, 126.977945))
    assert camera.managing_agency == "서울특별시 중구청"
    assert camera.agency_phone == "02-3396-4114"
    assert (camera.camera_count, camera.pixels, camera.retention_days) == (2, 200, 30)
    assert camera.installed_on == "2019-03"
    assert camera.source_date == date(2024, 5, 31)
    assert camera.status == CameraStatus.UNKNOWN


@pytest.mark.django_db
def test_utf8_csv_with_bom_reads_the_first_header_and_gives_the_same_codes(tmp_path):
    run_import(STANDARD_CSV)
    codes_without_bom = set(Camera.objects.values_list("code", flat=True))
    Camera.objects.all().delete()
    with_bom = tmp_path / "bom.csv"
    with_bom.write_bytes(b"\xef\xbb\xbf" + STANDARD_CSV.read_bytes())

    output = run_import(with_bom)

    assert "Read 12 rows (CSV, UTF-8)." in output
    assert set(Camera.objects.values_list("code", flat=True)) == codes_without_bom
    # 관리기관명 is the first column: with the BOM left on it, it would not be recognised.
    assert not Camera.objects.filter(managing_agency="").exists()


@pytest.mark.django_db
def test_cp949_csv_with_other_column_order_and_padded_headers_is_detected():
    output = run_import(DATA / "cctv_standard_cp949.csv")

    assert "Read 10 rows (CSV, CP949)." in output
    assert Camera.objects.count() == 10
    camera = Camera.objects.get(address="인천광역시 부평구 광장로 16")
    assert camera.managing_agency == "인천광역시 부평구청"
    assert (camera.location.y, camera.location.x) == pytest.approx((37.4895, 126.7245))
    assert camera.installed_on == "2019-05"
    # 지번 address when the 도로명 one is blank
    assert Camera.objects.filter(address="인천광역시 부평구 갈산동 377").exists()


@pytest.mark.django_db
def test_cp949_written_here_imports_and_encoding_option_overrides_detection(tmp_path):
    path = write_csv(
        tmp_path / "cp949.csv",
        [HEADER, "대전광역시 서구청,대전광역시 서구 둔산로 100,,생활방범,30,36.350400,127.384500"],
        encoding="cp949",
    )

    assert "(CSV, CP949)" in run_import(path)
    assert Camera.objects.get().address == "대전광역시 서구 둔산로 100"
    assert "(CSV, cp949)" in run_import(path, "--encoding", "cp949")
    with pytest.raises(CommandError, match="not valid utf-8"):
        run_import(path, "--encoding", "utf-8")


@pytest.mark.django_db
def test_geojson_imports_points_keyed_by_feature_id_or_code_property():
    output = run_import(DATA / "cameras.geojson")

    assert "Read 8 rows (GeoJSON, UTF-8)." in output
    codes = set(Camera.objects.values_list("code", flat=True))
    assert {"SEOUL-JG-0001", "SEOUL-JG-0002", "3"} < codes
    assert len(codes) == 4
    first = Camera.objects.get(code="SEOUL-JG-0001")
    assert first.name == "서울시청 앞 교차로"
    assert first.purpose == CameraPurpose.TRAFFIC
    assert (first.camera_count, first.retention_days, first.installed_on) == (2, 30, "2019-03")
    assert first.source_date == date(2024, 5, 31)
    korean_properties = Camera.objects.get(code="SEOUL-JG-0002")
    assert korean_properties.purpose == CameraPurpose.CRIME_PREVENTION
    assert korean_properties.retention_days == 60
    assert Camera.objects.get(code="3").address == "경기도 안양시 만안구 안양동 613-1"


@pytest.mark.django_db
def test_geojson_features_that_are_not_usable_points_are_reported_by_index():
    output = run_import(DATA / "cameras.geojson")

    assert "Skipped: 4" in output
    assert "feature 4: geometry is not a Point" in output
    assert "feature 5: coordinates are 0,0" in output
    assert "feature 6: latitude and longitude swapped" in output
    assert "feature 7: geometry is not a Point" in output


@pytest.mark.django_db
def test_same_camera_in_csv_and_geojson_without_id_gets_the_same_code():
    run_import(STANDARD_CSV)

    output = run_import(DATA / "cameras.geojson")

    # The Busan feature has no id: its hash matches the CSV row with the same fields.
    assert "Imported 4 cameras: 3 created, 1 updated." in output


# --- bad rows, duplicates, re-import ------------------------------------------------


@pytest.mark.django_db
def test_rows_with_bad_coordinates_are_reported_by_line_and_the_rest_imported():
    output = run_import(DATA / "cctv_bad_rows.csv")

    expected = {
        3: "missing coordinates",
        6: "coordinates are not numbers",
        7: "coordinates are not finite numbers",
        8: "latitude and longitude swapped",
        9: "coordinates out of range",
        10: "coordinates out of range",
        11: "coordinates are 0,0",
        14: "coordinates are not finite numbers",
    }
    for line, reason in expected.items():
        assert f"line {line}: {reason}" in output
    assert "Read 14 rows" in output
    assert "Skipped: 8" in output
    assert Camera.objects.count() == 5
    # A quoted address spanning two physical lines (4-5) is one row, single-spaced.
    assert Camera.objects.filter(address="서울특별시 중구 을지로 12").exists()
    # Padding around the coordinates of the last line is tolerated.
    assert Camera.objects.filter(address="서울특별시 중구 청계천로 40").exists()


@pytest.mark.django_db
def test_duplicate_key_in_one_file_keeps_the_last_row_and_is_counted():
    output = run_import(DATA / "cctv_bad_rows.csv")

    assert "Duplicates: 1" in output
    assert Camera.objects.get(address="서울특별시 중구 세종대로 110").retention_days == 60


@pytest.mark.django_db
def test_more_than_twenty_skipped_rows_are_listed_then_counted(tmp_path):
    lines = [HEADER, *[f"기관,주소 {n},,방범,30,,127.0" for n in range(25)], "기관,주소,,방범,30,37.5,127.0"]

    output = run_import(write_csv(tmp_path / "many_bad.csv", lines))

    assert "line 21: missing coordinates" in output
    assert "line 22:" not in output
    assert "and 5 more" in output
    assert Camera.objects.count() == 1


@pytest.mark.django_db
def test_reimport_updates_the_same_cameras_and_keeps_operator_fields(tmp_path):
    run_import(STANDARD_CSV)
    seen = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
    Camera.objects.filter(address="서울특별시 중구 세종대로 110").update(
        stream_url="rtsp://user:pw@10.0.0.5/live", status=CameraStatus.ONLINE, last_seen_at=seen
    )
    before = Camera.objects.get(address="서울특별시 중구 세종대로 110")
    # 보관일수 and 카메라대수 are not part of the key: the same camera, new values.
    changed = STANDARD_CSV.read_text(encoding="utf-8").replace(
        ",2,200,360도 전방면,30,", ",5,200,360도 전방면,90,"
    )
    edited = tmp_path / "edited.csv"
    edited.write_text(changed, encoding="utf-8")

    output = run_import(edited)

    assert "Imported 12 cameras: 0 created, 12 updated." in output
    assert Camera.objects.count() == 12
    after = Camera.objects.get(pk=before.pk)
    assert (after.camera_count, after.retention_days) == (5, 90)
    assert (after.stream_url, after.status, after.last_seen_at) == (
        "rtsp://user:pw@10.0.0.5/live",
        CameraStatus.ONLINE,
        seen,
    )
    assert after.created_at == before.created_at


@pytest.mark.django_db
def test_reimporting_the_same_file_changes_nothing_but_counts_updates():
    run_import(STANDARD_CSV)
    before = table_snapshot()

    output = run_import(STANDARD_CSV)

    assert "0 created, 12 updated" in output
    assert table_snapshot() == before


# --- malformed files ------------------------------------------------------------------

MALFORMED = [
    (
        "missing_columns.csv",
        "관리기관명,소재지도로명주소,X,Y\n기관,주소,37.5,127.0\n".encode(),
        "WGS84위도, WGS84경도",
    ),
    ("broken.geojson", b'{"type": "FeatureCollection", "features": [', "invalid JSON"),
    ("point.geojson", b'{"type": "Point", "coordinates": [127.0, 37.5]}', "not a GeoJSON FeatureCollection"),
    ("list.json", b"[1, 2, 3]", "not a GeoJSON FeatureCollection"),
    ("no_features.geojson", b'{"type": "FeatureCollection", "features": []}', "no features"),
    ("empty.csv", b"", "empty"),
    ("blank.csv", b"\xef\xbb\xbf \r\n\r\n", "empty"),
    ("header_only.csv", HEADER.encode(), "header but no rows"),
    ("garbage.csv", bytes(range(128, 256)) * 8, "neither UTF-8 nor CP949"),
    ("picture.csv", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(64), "NUL bytes"),
]


@pytest.mark.django_db
@pytest.mark.parametrize(("name", "content", "message"), MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_file_raises_command_error_and_leaves_the_table_as_it_was(tmp_path, name, content, message):
    run_import(STANDARD_CSV)
    before = table_snapshot()
    path = tmp_path / name
    path.write_bytes(content)

    with pytest.raises(CommandError, match=message):
        run_import(path)

    assert table_snapshot() == before


@pytest.mark.django_db
def test_fatal_error_late_in_the_file_imports_none_of_the_good_rows_before_it(tmp_path):
    good = [f"기관,주소 {n},,방범,30,37.5{n:03d},127.0" for n in range(50)]
    oversized = "기관," + "x" * 200_000 + ",,방범,30,37.5,127.0"  # beyond the csv module's field limit

    with pytest.raises(CommandError, match="not a readable CSV file"):
        run_import(write_csv(tmp_path / "late_error.csv", [HEADER, *good, oversized]))

    assert Camera.objects.count() == 0


@pytest.mark.django_db
def test_missing_file_is_a_command_error(tmp_path):
    with pytest.raises(CommandError, match="cannot read"):
        run_import(tmp_path / "nowhere.csv")


@pytest.mark.django_db
def test_failure_while_writing_rolls_back_every_batch(monkeypatch):
    def fail(**kwargs: object) -> dict[str, int]:
        raise RuntimeError("database went away")

    monkeypatch.setattr(services, "covering_centres_assign", fail)

    with pytest.raises(RuntimeError):
        run_import(STANDARD_CSV)

    assert Camera.objects.count() == 0


# --- centres ---------------------------------------------------------------------------


def test_cameras_are_assigned_to_the_centre_covering_them(center_factory):
    junggu = center_factory("seoul-junggu", JUNGGU)
    anyang = center_factory("anyang", ANYANG)

    output = run_import(STANDARD_CSV)

    assert Camera.objects.filter(center=junggu).count() == 6
    assert Camera.objects.filter(center=anyang).count() == 4
    assert Camera.objects.filter(center=None).count() == 2  # Busan: no centre covers it
    assert "Assigned to centres: 10 (seoul-junggu 6, anyang 4)" in output
    assert "No covering centre: 2" in output


def test_camera_no_centre_covers_keeps_the_centre_it_had(center_factory):
    junggu = center_factory("seoul-junggu", JUNGGU)
    anyang = center_factory("anyang", ANYANG)
    run_import(STANDARD_CSV, "--center", "seoul-junggu")
    assert Camera.objects.filter(center=junggu).count() == 12

    run_import(STANDARD_CSV)

    assert Camera.objects.filter(center=anyang).count() == 4
    assert Camera.objects.filter(center=junggu).count() == 8  # 6 covered + 2 in Busan left alone


def test_center_option_assigns_every_camera_to_that_centre(center_factory):
    center_factory("seoul-junggu", JUNGGU)
    anyang = center_factory("anyang", ANYANG)

    output = run_import(STANDARD_CSV, "--center", "anyang")

    assert Camera.objects.filter(center=anyang).count() == 12
    assert "Assigned to centres: 12 (anyang 12)" in output


@pytest.mark.django_db
def test_unknown_center_slug_is_a_command_error():
    with pytest.raises(CommandError, match="no centre with slug 'atlantis'"):
        run_import(STANDARD_CSV, "--center", "atlantis")
    assert Camera.objects.count() == 0


# --- dry run, progress, volume ----------------------------------------------------------


@pytest.mark.django_db
def test_dry_run_reports_and_writes_nothing():
    run_import(DATA / "cameras.geojson")
    before = table_snapshot()

    output = run_import(STANDARD_CSV, "--dry-run")

    assert "Read 12 rows" in output
    assert "Dry run: would import 12 cameras (11 new, 1 existing). Nothing was written." in output
    assert table_snapshot() == before


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.django_db
def test_progress_bar_is_drawn_only_when_stdout_is_a_terminal(capsys):
    run_import(STANDARD_CSV)
    assert "12/12" not in capsys.readouterr().out

    call_command("import_cameras", str(STANDARD_CSV), stdout=Terminal())

    assert "12/12" in capsys.readouterr().out


@pytest.mark.django_db
def test_16000_rows_import_with_a_few_batched_queries(tmp_path, center_factory):
    center_factory("seoul-junggu", JUNGGU)
    lines = [HEADER]
    for n in range(16_000):
        lat, lon = 37.50 + (n // 200) * 0.001, 126.90 + (n % 200) * 0.001
        lines.append(f"서울특별시 중구청,서울특별시 중구 가상로 {n},,생활방범,30,{lat:.6f},{lon:.6f}")
    path = write_csv(tmp_path / "big.csv", lines)

    with CaptureQueriesContext(connection) as queries:
        output = run_import(path)

    assert Camera.objects.count() == 16_000
    assert "Imported 16000 cameras: 16000 created, 0 updated." in output
    # 2 per batch of 2,000 plus a handful: never one query per row.
    assert len(queries) < 30


# --- field parsing ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "purpose"),
    [
        ("방범", CameraPurpose.CRIME_PREVENTION),
        ("생활방범", CameraPurpose.CRIME_PREVENTION),
        ("어린이보호", CameraPurpose.CRIME_PREVENTION),
        ("시설안전", CameraPurpose.FACILITY_SAFETY),
        ("시설물안전", CameraPurpose.FACILITY_SAFETY),
        ("교통단속", CameraPurpose.TRAFFIC),
        ("교통정보수집", CameraPurpose.TRAFFIC),
        ("화재예방", CameraPurpose.FIRE),
        ("재난재해", CameraPurpose.DISASTER),
        ("쓰레기단속", CameraPurpose.OTHER),
        ("", CameraPurpose.OTHER),
        ("traffic", CameraPurpose.TRAFFIC),
    ],
)
def test_purpose_text_maps_to_camera_purpose(text, purpose):
    assert purpose_from_text(text=text) == purpose


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2019-03", "2019-03"),
        ("201903", "2019-03"),
        ("2019.3", "2019-03"),
        ("2019년 3월", "2019-03"),
        ("2021-01-15", "2021-01"),
        ("", ""),
        ("2019", ""),
        ("2019-13", ""),
        ("모름", ""),
    ],
)
def test_installation_month_is_normalised_to_year_dash_month(text, expected):
    assert year_month(text=text) == expected


@pytest.mark.parametrize(
    ("text", "expected"), [("30", 30), ("30일", 30), ("", None), ("0", None), ("삼십", None)]
)
def test_retention_days_that_are_blank_zero_or_garbage_become_none(text, expected):
    assert positive_int(text=text, maximum=3650) == expected


def test_swapped_korean_coordinates_are_named_as_swapped():
    assert "swapped" in str(coordinates(lat_text="126.97", lon_text="37.56"))
    assert coordinates(lat_text="37.56", lon_text="126.97") == (37.56, 126.97)


def test_stable_code_ignores_how_many_digits_the_coordinates_were_printed_with():
    short = stable_code(agency="기관", address="주소", purpose_text="방범", lat=37.5663, lon=126.9779)
    long = stable_code(agency="기관", address="주소", purpose_text="방범", lat=37.56630000001, lon=126.9779)

    assert short == long
    assert re.fullmatch(r"KR-[0-9a-f]{16}", short)
