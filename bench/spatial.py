"""Spatial reads at city scale: nearest-10 cameras among 1,000,000 around Seoul.

The selector (`cameras.selectors.cameras_nearest`, KNN `<->` on the GiST index) is timed
against the naive `order_by(Distance(...))`, which computes every row's distance, on the
same data and the same query points, in the same run. Targets: selector median ≤ 5 ms,
naive/selector ≥ 100×.
"""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Callable
from functools import partial
from typing import Any

from django.contrib.gis.db.models.functions import Distance
from django.contrib.gis.geos import Point
from django.db import connection, transaction

from bench.common import Figure, Target, percentile, report, report_figure, time_ms
from cameras.models import Camera
from cameras.selectors import cameras_nearest, cameras_within, make_point

N_CAMERAS = 1_000_000
# Around Seoul: about 37 km × 31 km, so ~870 cameras per km² — denser than any real city,
# which makes the index work harder, not less.
LON_MIN, LON_MAX = 126.76, 127.18
LAT_MIN, LAT_MAX = 37.42, 37.70
DATA_SEED = 0.42  # PostgreSQL setseed() takes a value in [-1, 1]
QUERY_SEED = 20_240_601
# Every bench camera carries this name: a changed generator gives a different signature,
# so a stale data set is reloaded rather than silently reused.
SIGNATURE = f"bench v1 n={N_CAMERAS} seed={DATA_SEED} box={LON_MIN},{LAT_MIN},{LON_MAX},{LAT_MAX}"
CODE_PREFIX = "BENCH-"

WARMUP = 20
SELECTOR_RUNS = 300
WITHIN_RUNS = 100
NAIVE_RUNS = 15  # each one reads all 1M rows: seconds, not milliseconds
RADIUS_M = 300


def run() -> list[Figure]:
    ensure_cameras()
    points = query_points(WARMUP + SELECTOR_RUNS)
    warmup, timed = points[:WARMUP], points[WARMUP:]
    print_plan(timed[0])

    for p in warmup:  # fills the caches and the connection before anything is timed
        cameras_nearest(point=p, limit=10)
    selector_ms, selector_codes = time_selector(timed)
    within_ms = [time_ms(partial(cameras_within, point=p, radius_m=RADIUS_M)) for p in timed[:WITHIN_RUNS]]
    naive_ms, naive_codes = time_naive(timed[:NAIVE_RUNS])

    same = sum(set(a) == set(b) for a, b in zip(naive_codes, selector_codes, strict=False))
    same_order = sum(a == b for a, b in zip(naive_codes, selector_codes, strict=False))
    ratio = statistics.median(naive_ms) / statistics.median(selector_ms)
    figures = [
        Figure("nearest-10 median", statistics.median(selector_ms), "ms", Target("<=", 5)),
        Figure("nearest-10 p95", percentile(selector_ms, 95), "ms"),
        Figure("nearest-10 p99", percentile(selector_ms, 99), "ms"),
        Figure(f"within {RADIUS_M} m median", statistics.median(within_ms), "ms"),
        Figure("naive order_by(Distance) median", statistics.median(naive_ms), "ms"),
        Figure("ratio naive/selector", ratio, "×", Target(">=", 100)),
        Figure("same ten as exact distance", same, f"of {len(naive_codes)}", Target(">=", len(naive_codes))),
    ]
    counts = f"selector {len(selector_ms)} (+{WARMUP} warmup), within {len(within_ms)}, naive {len(naive_ms)}"
    report("timed runs", counts)
    for figure in figures:
        report_figure(figure)
    report("same ten", f"{same}/{len(naive_codes)} (same order {same_order}/{len(naive_codes)})")
    return figures


# --- data --------------------------------------------------------------------------


def ensure_cameras() -> None:
    """Load the 1M cameras unless exactly this data set is already there (a rerun reuses it)."""
    with connection.cursor() as cur:
        cur.execute(
            "SELECT count(*), count(*) FILTER (WHERE name = %s) FROM cameras_camera WHERE code LIKE %s",
            [SIGNATURE, CODE_PREFIX + "%"],
        )
        total, matching = cur.fetchone()
    if total == matching == N_CAMERAS:
        report("data", f"reusing {N_CAMERAS:,} cameras (load skipped)")
        return
    start = time.perf_counter()
    load_cameras()
    report(f"load {N_CAMERAS:,} cameras", f"{time.perf_counter() - start:.1f} s (insert + vacuum analyze)")


def load_cameras() -> None:
    columns, values, params = insert_values()
    # One INSERT … SELECT in the server: ~100× faster than bulk_create for a million rows.
    # random() is evaluated row by row in series order (data-modifying statements never
    # run in parallel), so after setseed() the data set is the same on every machine.
    sql = (
        f"INSERT INTO cameras_camera ({', '.join(columns)}) SELECT {', '.join(values)} FROM ("
        f" SELECT i, {LON_MIN} + random() * {LON_MAX - LON_MIN} AS lon,"
        f" {LAT_MIN} + random() * {LAT_MAX - LAT_MIN} AS lat"
        f" FROM generate_series(1, {N_CAMERAS}) AS i) AS s"
    )
    with transaction.atomic(), connection.cursor() as cur:
        cur.execute("DELETE FROM cameras_camera WHERE code LIKE %s", [CODE_PREFIX + "%"])
        cur.execute("SELECT setseed(%s)", [DATA_SEED])
        cur.execute(sql, params)
    # VACUUM as well as ANALYZE: it sets the hint bits now, so the first timed full scan
    # does not pay for writing them, and it clears what a previous data set left behind.
    with connection.cursor() as cur:
        cur.execute("VACUUM ANALYZE cameras_camera")


def insert_values() -> tuple[list[str], list[str], list[Any]]:
    """Columns and SQL values for the INSERT: generated ones, else each field's default.

    Taken from the model so that a column added later gets its default instead of
    breaking the benchmark.
    """
    generated: dict[str, tuple[str, list[Any]]] = {
        "code": (f"'{CODE_PREFIX}' || lpad(i::text, 7, '0')", []),
        "name": ("%s", [SIGNATURE]),
        "location": ("ST_SetSRID(ST_MakePoint(lon, lat), 4326)::geography", []),
        "created_at": ("now()", []),
        "updated_at": ("now()", []),
    }
    columns: list[str] = []
    values: list[str] = []
    params: list[Any] = []
    for field in Camera._meta.concrete_fields:
        if field.primary_key:
            continue
        columns.append(connection.ops.quote_name(field.column))
        if field.attname in generated:
            value, value_params = generated[field.attname]
            values.append(value)
            params.extend(value_params)
            continue
        default = field.get_default()
        if default is None and not field.null:
            raise RuntimeError(f"bench: no value for NOT NULL column cameras_camera.{field.column}")
        values.append("%s")
        params.append(field.get_db_prep_save(default, connection))
    return columns, values, params


def query_points(count: int) -> list[Point]:
    """Fixed-seed points inside the box, so every run asks the same questions."""
    rng = random.Random(QUERY_SEED)
    return [
        make_point(lat=rng.uniform(LAT_MIN, LAT_MAX), lon=rng.uniform(LON_MIN, LON_MAX)) for _ in range(count)
    ]


# --- measurements ------------------------------------------------------------------


def time_selector(points: list[Point]) -> tuple[list[float], list[list[str]]]:
    """Milliseconds per `cameras_nearest` call (ORM and result objects included), and its codes."""
    timings: list[float] = []
    codes: list[list[str]] = []
    for p in points:
        start = time.perf_counter()
        nearest = cameras_nearest(point=p, limit=10)
        timings.append((time.perf_counter() - start) * 1000)
        codes.append([n.camera.code for n in nearest])
    return timings, codes


def time_naive(points: list[Point]) -> tuple[list[float], list[list[str]]]:
    """The same question asked the naive way; its answer is also the exact top ten."""

    def naive(p: Point) -> list[Camera]:
        return list(Camera.objects.annotate(d=Distance("location", p)).order_by("d")[:10])

    naive(points[0])  # one untimed run: the first full scan also warms the OS page cache
    timings: list[float] = []
    codes: list[list[str]] = []
    for p in points:
        start = time.perf_counter()
        rows = naive(p)
        timings.append((time.perf_counter() - start) * 1000)
        codes.append([c.code for c in rows])
    return timings, codes


def print_plan(point: Point) -> None:
    """EXPLAIN ANALYZE the exact SQL the selector sends, captured on its way to the server."""
    captured: list[tuple[str, Any]] = []

    def capture(execute: Callable[..., Any], sql: str, params: Any, many: bool, context: Any) -> Any:
        captured.append((sql, params))
        return execute(sql, params, many, context)

    with connection.execute_wrapper(capture):
        cameras_nearest(point=point, limit=10)
    # Only the camera query: the first call also looks up the SRID's units in spatial_ref_sys.
    sql, params = next((sql, params) for sql, params in captured if "cameras_camera" in sql)
    with connection.cursor() as cur:
        cur.execute("EXPLAIN (ANALYZE, COSTS OFF) " + sql, params)
        plan = [row[0] for row in cur.fetchall()]
    uses_gist = any("Index Scan using" in line and "_location_" in line for line in plan)
    report("selector uses the GiST index", "yes" if uses_gist else "NO — full scan")
    for line in plan[:8]:
        print(f"    | {line}")
