"""Import cameras from the national CCTV standard data (CSV) or a GeoJSON file.

Two steps, so that a bad file writes nothing: `camera_file_parse` reads and checks the
whole file into `CameraRow`s, setting aside rows whose coordinates cannot be used (with
their line numbers), then `cameras.services.camera_rows_upsert` writes the rows in one transaction with a
few batched queries and assigns each camera to the centre whose jurisdiction covers it.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import math
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from cameras.models import Camera, CameraPurpose, Center
from cameras.selectors import make_point

BATCH_SIZE = 2000

# Canonical field -> the CSV headers and GeoJSON property names that carry it, compared
# with whitespace removed and case folded: real headers come with stray spaces.
FIELD_ALIASES: dict[str, tuple[str, ...]] = {
    "name": ("name", "title", "카메라명"),
    "agency": ("관리기관명", "agency", "managing_agency"),
    "road_address": ("소재지도로명주소", "address", "road_address"),
    "lot_address": ("소재지지번주소", "lot_address", "jibun_address"),
    "purpose": ("설치목적구분", "purpose"),
    "camera_count": ("카메라대수", "camera_count"),
    "pixels": ("카메라화소수", "pixels"),
    "retention_days": ("보관일수", "retention_days"),
    "installed_on": ("설치연월", "installed_on"),
    "agency_phone": ("관리기관전화번호", "agency_phone", "phone"),
    "lat": ("WGS84위도", "위도", "latitude", "lat"),
    "lon": ("WGS84경도", "경도", "longitude", "lon", "lng"),
    "source_date": ("데이터기준일자", "source_date"),
}
# Without these a CSV row cannot be placed or keyed; named as the standard names them.
REQUIRED_CSV_FIELDS = {"agency": "관리기관명", "lat": "WGS84위도", "lon": "WGS84경도"}
# GeoJSON: the feature's `id` is the key; failing that, one of these properties.
CODE_PROPERTIES = ("code", "camera_code")

# First match wins. 설치목적구분 is free text in real data ("생활방범", "차량방범",
# "교통정보수집", "시설물관리"), so match on the meaningful part of the word.
PURPOSE_KEYWORDS: tuple[tuple[str, CameraPurpose], ...] = (
    ("방범", CameraPurpose.CRIME_PREVENTION),
    # Child-protection cameras watch school zones and playgrounds for crime, not speed.
    ("어린이보호", CameraPurpose.CRIME_PREVENTION),
    ("시설", CameraPurpose.FACILITY_SAFETY),
    ("교통", CameraPurpose.TRAFFIC),
    ("주정차", CameraPurpose.TRAFFIC),
    ("화재", CameraPurpose.FIRE),
    ("산불", CameraPurpose.FIRE),
    ("재난", CameraPurpose.DISASTER),
    ("재해", CameraPurpose.DISASTER),
)


class ImportFileError(Exception):
    """The file as a whole cannot be imported (unreadable or the wrong shape); nothing is written."""


@dataclass(frozen=True)
class SkippedRow:
    """A row left out, and why. `position` is the CSV line (header = 1) or the feature index."""

    position: int
    reason: str


@dataclass(frozen=True)
class CameraRow:
    """One camera as read from the file, checked and ready to write."""

    code: str
    name: str
    lat: float
    lon: float
    address: str
    purpose: str
    managing_agency: str
    agency_phone: str
    camera_count: int
    pixels: int | None
    retention_days: int | None
    installed_on: str
    source_date: date | None

    def to_camera(self, *, center: Center | None) -> Camera:
        return Camera(
            code=self.code,
            name=self.name,
            center=center,
            location=make_point(lat=self.lat, lon=self.lon),
            address=self.address,
            purpose=self.purpose,
            managing_agency=self.managing_agency,
            agency_phone=self.agency_phone,
            camera_count=self.camera_count,
            pixels=self.pixels,
            retention_days=self.retention_days,
            installed_on=self.installed_on,
            source_date=self.source_date,
        )


@dataclass
class ParsedFile:
    """Everything read from a file; `rows` holds one row per code, the last one seen."""

    kind: str
    encoding: str
    position_label: str
    read: int = 0
    duplicates: int = 0
    rows: dict[str, CameraRow] = field(default_factory=dict)
    skipped: list[SkippedRow] = field(default_factory=list)

    def add(self, item: CameraRow | SkippedRow) -> None:
        self.read += 1
        if isinstance(item, SkippedRow):
            self.skipped.append(item)
            return
        if item.code in self.rows:
            self.duplicates += 1
        self.rows[item.code] = item


def clean_text(value: object, *, limit: int = 300) -> str:
    """A property or cell as single-spaced text: real files pad and double-space freely."""
    if value is None or isinstance(value, bool | dict | list):
        return ""
    return " ".join(str(value).split())[:limit]


def purpose_from_text(*, text: str) -> CameraPurpose:
    """The CameraPurpose of a 설치목적구분 value (or of a purpose value itself); `other` if unknown."""
    value = text.strip()
    if value in CameraPurpose.values:
        return CameraPurpose(value)
    for keyword, purpose in PURPOSE_KEYWORDS:
        if keyword in value:
            return purpose
    return CameraPurpose.OTHER


def positive_int(*, text: str, maximum: int = 2_147_483_647) -> int | None:
    """A count such as "30", "30일" or "200만"; None for blank, zero, out of range or garbage."""
    match = re.fullmatch(r"(\d+)(?:\.0*)?\s*(?:일|대|만)?", text.replace(",", "").strip())
    if match is None:
        return None
    value = int(match.group(1))
    return value if 0 < value <= maximum else None


def year_month(*, text: str) -> str:
    """설치연월 as "YYYY-MM" from "2019-03", "201903", "2019.3", "2019년 3월" or a full date."""
    match = re.fullmatch(r"(\d{4})\s*(?:[-./]|년)?\s*(\d{1,2})\s*월?(?:[-./]?\d{1,2}\.?)?", text.strip())
    if match is None:
        return ""
    year, month = int(match.group(1)), int(match.group(2))
    return f"{year:04d}-{month:02d}" if 1900 <= year <= 2100 and 1 <= month <= 12 else ""


def parse_date(*, text: str) -> date | None:
    """데이터기준일자 from "2024-05-31", "20240531", "2024.05.31" or "2024/5/31"; None otherwise."""
    match = re.fullmatch(r"(\d{4})\s*[-./년]?\s*(\d{1,2})\s*[-./월]?\s*(\d{1,2})\s*일?\.?", text.strip())
    if match is None:
        return None
    with contextlib.suppress(ValueError):
        return date(int(match.group(1)), int(match.group(2)), int(match.group(3)))
    return None


def coordinates(*, lat_text: str, lon_text: str) -> tuple[float, float] | str:
    """(lat, lon) of a row, or why they cannot be used."""
    if not lat_text or not lon_text:
        return "missing coordinates"
    try:
        lat, lon = float(lat_text), float(lon_text)
    except ValueError:
        return f"coordinates are not numbers ({lat_text[:20]!r}, {lon_text[:20]!r})"
    if not (math.isfinite(lat) and math.isfinite(lon)):
        return "coordinates are not finite numbers"
    if lat == 0 and lon == 0:
        return "coordinates are 0,0 (a placeholder, not a place)"
    # Korea spans lat 33-39, lon 124-132: a "latitude" of 126 is a longitude in the wrong column.
    if 124 <= lat <= 132 and 33 <= lon <= 39:
        return f"latitude and longitude swapped (lat {lat}, lon {lon})"
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        return f"coordinates out of range (lat {lat}, lon {lon})"
    return lat, lon


def stable_code(*, agency: str, address: str, purpose_text: str, lat: float, lon: float) -> str:
    """The key of a CSV row, which has no id of its own: the same camera gets the same code
    on every import. Coordinates are rounded to 6 decimals (~0.1 m) so that a re-export
    printing more or fewer digits keeps the key."""
    key = "\x1f".join((agency, address, purpose_text, f"{lat:.6f}", f"{lon:.6f}"))
    return "KR-" + hashlib.sha256(key.encode()).hexdigest()[:16]


def row_from_record(*, record: Mapping[str, str], position: int, code: str = "") -> CameraRow | SkippedRow:
    """A `CameraRow` from canonical fields (see FIELD_ALIASES), or why the row is skipped."""
    where = coordinates(lat_text=record.get("lat", ""), lon_text=record.get("lon", ""))
    if isinstance(where, str):
        return SkippedRow(position=position, reason=where)
    lat, lon = where
    agency = record.get("agency", "")[:120]
    address = record.get("road_address") or record.get("lot_address", "")
    purpose_text = record.get("purpose", "")
    purpose = purpose_from_text(text=purpose_text)
    code = code or stable_code(agency=agency, address=address, purpose_text=purpose_text, lat=lat, lon=lon)
    if len(code) > 64:
        return SkippedRow(position=position, reason=f"code longer than 64 characters ({code[:20]}…)")
    readable = " ".join(part for part in (agency, purpose_text or purpose.label, address) if part)
    return CameraRow(
        code=code,
        name=(record.get("name") or readable)[:200],
        lat=lat,
        lon=lon,
        address=address,
        purpose=purpose.value,
        managing_agency=agency,
        agency_phone=record.get("agency_phone", "")[:40],
        camera_count=positive_int(text=record.get("camera_count", "")) or 1,
        pixels=positive_int(text=record.get("pixels", "")),
        retention_days=positive_int(text=record.get("retention_days", ""), maximum=3650),
        installed_on=year_month(text=record.get("installed_on", "")),
        source_date=parse_date(text=record.get("source_date", "")),
    )


def field_key(name: str) -> str:
    return "".join(name.replace("\ufeff", "").split()).lower()


ALIAS_TO_FIELD = {field_key(alias): name for name, aliases in FIELD_ALIASES.items() for alias in aliases}


def record_from_mapping(mapping: Mapping[str, object]) -> dict[str, str]:
    """Canonical fields from GeoJSON properties; the first non-blank alias wins."""
    record: dict[str, str] = {}
    for key, value in mapping.items():
        name = ALIAS_TO_FIELD.get(field_key(key))
        if name is not None and not record.get(name):
            record[name] = clean_text(value)
    return record


def decode(*, data: bytes, encoding: str | None) -> tuple[str, str]:
    """The file's text and the encoding that read it.

    UTF-8 is tried before CP949 because CP949 text is almost never valid UTF-8, while
    UTF-8 Korean often decodes as CP949 without error, into nonsense.
    """
    if encoding:
        try:
            return data.decode(encoding).removeprefix("\ufeff"), encoding
        except LookupError as exc:
            raise ImportFileError(f"unknown encoding {encoding!r}") from exc
        except UnicodeDecodeError as exc:
            raise ImportFileError(f"the file is not valid {encoding} (byte {exc.start})") from exc
    for codec, label in (("utf-8-sig", "UTF-8"), ("cp949", "CP949")):
        with contextlib.suppress(UnicodeDecodeError):
            return data.decode(codec), label
    raise ImportFileError("the file is neither UTF-8 nor CP949 text; give its encoding with --encoding")


def camera_file_parse(*, path: Path, encoding: str | None = None) -> ParsedFile:
    """Read and check a whole CSV or GeoJSON file; raises ImportFileError if it is unusable."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ImportFileError(f"cannot read {path}: {exc.strerror}") from exc
    text, used = decode(data=data, encoding=encoding)
    if not text.strip():
        raise ImportFileError(f"{path} is empty")
    # Python's csv module reads NUL bytes since 3.11, so binary files must be caught here.
    if "\x00" in text:
        raise ImportFileError(f"{path} contains NUL bytes: a binary file (or UTF-16), not CSV or GeoJSON")
    if path.suffix.lower() in {".geojson", ".json"} or text.lstrip().startswith(("{", "[")):
        return geojson_parse(text=text, encoding=used)
    return csv_parse(text=text, encoding=used)


def geojson_parse(*, text: str, encoding: str) -> ParsedFile:
    """Point features of a FeatureCollection; other features are skipped by index."""
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ImportFileError(f"invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}") from exc
    if not isinstance(document, dict) or document.get("type") != "FeatureCollection":
        raise ImportFileError('not a GeoJSON FeatureCollection (expected {"type": "FeatureCollection", …})')
    features = document.get("features")
    if not isinstance(features, list) or not features:
        raise ImportFileError("the FeatureCollection has no features")
    parsed = ParsedFile(kind="GeoJSON", encoding=encoding, position_label="feature")
    for index, feature in enumerate(features):
        parsed.add(row_from_feature(feature=feature, index=index))
    return parsed


def row_from_feature(*, feature: object, index: int) -> CameraRow | SkippedRow:
    if not isinstance(feature, dict) or feature.get("type") != "Feature":
        return SkippedRow(position=index, reason="not a GeoJSON Feature")
    geometry = feature.get("geometry")
    if not isinstance(geometry, dict) or geometry.get("type") != "Point":
        return SkippedRow(position=index, reason="geometry is not a Point")
    point = geometry.get("coordinates")
    if not isinstance(point, list) or len(point) < 2:
        return SkippedRow(position=index, reason="missing coordinates")
    properties = feature.get("properties")
    properties = properties if isinstance(properties, dict) else {}
    record = record_from_mapping(properties)
    record["lon"], record["lat"] = clean_text(point[0]), clean_text(point[1])
    codes = [feature.get("id"), *(properties.get(name) for name in CODE_PROPERTIES)]
    code = next((text for text in map(clean_text, codes) if text), "")
    return row_from_record(record=record, position=index, code=code)


def csv_lines(*, text: str) -> Iterator[tuple[int, list[str]]]:
    """Each CSV record with the physical line it starts on (a quoted field may span lines)."""
    reader = csv.reader(io.StringIO(text, newline=""))
    previous_end = 0
    for cells in reader:
        yield previous_end + 1, cells
        previous_end = reader.line_num


def csv_columns(*, header: Sequence[str]) -> dict[str, int]:
    """Canonical field -> column index, by header name since column order varies between files."""
    columns: dict[str, int] = {}
    for index, title in enumerate(header):
        name = ALIAS_TO_FIELD.get(field_key(title))
        if name is not None:
            columns.setdefault(name, index)
    missing = [title for name, title in REQUIRED_CSV_FIELDS.items() if name not in columns]
    if missing:
        found = ", ".join(clean_text(title, limit=30) for title in header[:15])
        raise ImportFileError(f"missing required column(s) {', '.join(missing)} (found: {found})")
    return columns


def csv_parse(*, text: str, encoding: str) -> ParsedFile:
    """Rows of the national CCTV standard data; the first non-blank line is the header."""
    parsed = ParsedFile(kind="CSV", encoding=encoding, position_label="line")
    columns: dict[str, int] | None = None
    try:
        for line, cells in csv_lines(text=text):
            if not any(cell.strip() for cell in cells):
                continue
            if columns is None:
                columns = csv_columns(header=cells)
                continue
            record = {name: clean_text(cells[i]) if i < len(cells) else "" for name, i in columns.items()}
            parsed.add(row_from_record(record=record, position=line))
    except csv.Error as exc:
        raise ImportFileError(f"not a readable CSV file: {exc}") from exc
    if parsed.read == 0:
        raise ImportFileError("the CSV file has a header but no rows")
    return parsed
