"""Writes to the camera registry.

The importer's write half lives here: `camera_rows_upsert` takes rows that
`cameras.importers.camera_file_parse` has already checked and writes them in one
transaction with a few batched queries.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from django.db import connection, transaction

from cameras.importers import BATCH_SIZE, CameraRow
from cameras.models import Camera, Center

# What the import owns on an existing camera. Never stream_url, status or last_seen_at:
# operators and the video relay set those, and a re-import must not undo their work.
IMPORTED_FIELDS = [
    "name",
    "location",
    "address",
    "purpose",
    "managing_agency",
    "agency_phone",
    "camera_count",
    "pixels",
    "retention_days",
    "installed_on",
    "source_date",
    "updated_at",
]

# DISTINCT ON picks the lowest centre id when jurisdictions overlap, as `center_for_point` does.
ASSIGN_CENTRES_SQL = """
    UPDATE cameras_camera AS cam SET center_id = pick.center_id
    FROM (
        SELECT DISTINCT ON (inner_cam.id) inner_cam.id AS camera_id, c.id AS center_id
        FROM cameras_camera AS inner_cam
        JOIN cameras_center AS c ON ST_Covers(c.jurisdiction, inner_cam.location)
        WHERE inner_cam.code = ANY(%s)
        ORDER BY inner_cam.id, c.id
    ) AS pick
    WHERE cam.id = pick.camera_id
    RETURNING cam.center_id
"""


@dataclass(frozen=True)
class UpsertResult:
    """What the write did; `assigned` counts cameras per centre slug."""

    created: int
    updated: int
    assigned: dict[str, int]

    @property
    def unassigned(self) -> int:
        return self.created + self.updated - sum(self.assigned.values())


def cameras_count_existing(*, codes: Sequence[str], batch_size: int = BATCH_SIZE) -> int:
    """How many of `codes` are already cameras; batched to stay far below PostgreSQL's parameter limit."""
    return sum(
        Camera.objects.filter(code__in=codes[start : start + batch_size]).count()
        for start in range(0, len(codes), batch_size)
    )


def camera_rows_upsert(
    *,
    rows: Sequence[CameraRow],
    center: Center | None = None,
    batch_size: int = BATCH_SIZE,
    on_progress: Callable[[int], object] | None = None,
) -> UpsertResult:
    """Create or update `rows` by code in one transaction, then assign them to centres.

    With `center`, every row goes to that centre. Without, each goes to the centre whose
    jurisdiction covers it; a camera no centre covers keeps the centre it had, if any.
    """
    update_fields = [*IMPORTED_FIELDS, "center"] if center else IMPORTED_FIELDS
    existing = 0
    with transaction.atomic():
        for start in range(0, len(rows), batch_size):
            batch = rows[start : start + batch_size]
            existing += cameras_count_existing(codes=[row.code for row in batch])
            Camera.objects.bulk_create(
                [row.to_camera(center=center) for row in batch],
                update_conflicts=True,
                unique_fields=["code"],
                update_fields=update_fields,
            )
            if on_progress is not None:
                on_progress(len(batch))
        if center is not None:
            assigned = {center.slug: len(rows)} if rows else {}
        else:
            assigned = covering_centres_assign(codes=[row.code for row in rows])
    return UpsertResult(created=len(rows) - existing, updated=existing, assigned=assigned)


def covering_centres_assign(*, codes: Sequence[str]) -> dict[str, int]:
    """Point each camera in `codes` at the centre covering it, in one UPDATE for the whole import."""
    with connection.cursor() as cursor:
        cursor.execute(ASSIGN_CENTRES_SQL, [list(codes)])
        per_centre = Counter(center_id for (center_id,) in cursor.fetchall())
    slugs = dict(Center.objects.filter(pk__in=per_centre).values_list("pk", "slug"))
    return {slugs[center_id]: count for center_id, count in sorted(per_centre.items())}
