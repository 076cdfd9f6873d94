"""`python manage.py import_cameras FILE`: load cameras from CCTV standard data or GeoJSON."""

from __future__ import annotations

import sys
from argparse import RawDescriptionHelpFormatter
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser, DjangoHelpFormatter
from tqdm import tqdm

from cameras.importers import ImportFileError, ParsedFile, camera_file_parse
from cameras.models import Center
from cameras.services import UpsertResult, camera_rows_upsert, cameras_count_existing

SKIPPED_LISTED = 20


class HelpFormatter(DjangoHelpFormatter, RawDescriptionHelpFormatter):
    """Keeps the line breaks of the help text below, which lists columns and properties."""


class Command(BaseCommand):
    help = """Create or update cameras from a file; importing the same file again updates, never duplicates.

CSV: the national CCTV standard data (전국CCTV표준데이터), UTF-8 (with or without BOM)
or CP949, detected. Columns are found by header name in any order; extra columns are
ignored. Required: 관리기관명, WGS84위도, WGS84경도. Also read: 소재지도로명주소 (else
소재지지번주소), 설치목적구분, 카메라대수, 카메라화소수, 보관일수, 설치연월,
관리기관전화번호, 데이터기준일자. A row's code is "KR-" + a hash of agency, address,
purpose and coordinates.

GeoJSON: a FeatureCollection of Point features. Code: the feature's "id", else
properties "code" or "camera_code" (else the hash above). Properties (aliases):
  name (title), agency (managing_agency, 관리기관명), address (road_address,
  소재지도로명주소), lot_address (소재지지번주소), purpose (설치목적구분; a purpose
  value such as "traffic" or Korean text), camera_count, pixels, retention_days,
  installed_on, phone (agency_phone), source_date - each also under its Korean column name.

Rows with missing or impossible coordinates are listed and skipped. A file that cannot
be read as a whole imports nothing. Each camera goes to the centre whose jurisdiction
covers it unless --center is given; stream URL, status and last-seen are never touched."""

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> CommandParser:
        parser = super().create_parser(prog_name, subcommand, **kwargs)
        parser.formatter_class = HelpFormatter
        return parser

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", type=Path, help="a .csv, .geojson or .json file")
        parser.add_argument("--encoding", help="read the file with this encoding instead of detecting it")
        parser.add_argument("--dry-run", action="store_true", help="read and report, write nothing")
        parser.add_argument("--center", metavar="SLUG", help="assign every camera to this centre")

    def handle(self, *args: Any, **options: Any) -> None:
        center = self.forced_center(slug=options["center"])
        try:
            parsed = camera_file_parse(path=options["file"], encoding=options["encoding"])
        except ImportFileError as exc:
            raise CommandError(f"{options['file']}: {exc}. Nothing was imported.") from exc
        rows = list(parsed.rows.values())
        if options["dry_run"]:
            existing = cameras_count_existing(codes=[row.code for row in rows])
            self.report_parsed(parsed=parsed)
            self.stdout.write(
                f"Dry run: would import {len(rows)} cameras ({len(rows) - existing} new, "
                f"{existing} existing). Nothing was written."
            )
            return
        # The bar goes to a terminal only: in logs and cron mail it is noise.
        with tqdm(total=len(rows), unit="camera", file=sys.stdout, disable=not self.stdout.isatty()) as bar:
            result = camera_rows_upsert(rows=rows, center=center, on_progress=bar.update)
        self.report_parsed(parsed=parsed)
        self.report_result(result=result)

    def forced_center(self, *, slug: str | None) -> Center | None:
        if slug is None:
            return None
        center = Center.objects.filter(slug=slug).first()
        if center is None:
            raise CommandError(f"no centre with slug {slug!r}")
        return center

    def report_parsed(self, *, parsed: ParsedFile) -> None:
        self.stdout.write(f"Read {parsed.read} rows ({parsed.kind}, {parsed.encoding}).")
        self.stdout.write(f"Skipped: {len(parsed.skipped)}")
        for skipped in parsed.skipped[:SKIPPED_LISTED]:
            self.stdout.write(f"  {parsed.position_label} {skipped.position}: {skipped.reason}")
        if len(parsed.skipped) > SKIPPED_LISTED:
            self.stdout.write(f"  and {len(parsed.skipped) - SKIPPED_LISTED} more")
        self.stdout.write(
            f"Duplicates: {parsed.duplicates} (rows repeating an earlier key; the last one won)"
        )

    def report_result(self, *, result: UpsertResult) -> None:
        centres = ", ".join(f"{slug} {count}" for slug, count in result.assigned.items())
        self.stdout.write(
            f"Imported {result.created + result.updated} cameras: "
            f"{result.created} created, {result.updated} updated."
        )
        self.stdout.write(
            f"Assigned to centres: {sum(result.assigned.values())}" + (f" ({centres})" if centres else "")
        )
        self.stdout.write(f"No covering centre: {result.unassigned}")
