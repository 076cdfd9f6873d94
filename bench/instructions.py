"""Instructions per partner event, counted by callgrind: a figure this machine's noise cannot move.

The intake's wall-clock figures swing by 2× within an hour on this shared VM, so a
change worth 10 % needs many alternating runs to show. `valgrind --tool=callgrind`
counts the instructions a process executes, the same for the same code and input
however busy the machine is. Two child processes run under it side by side (sharing
the cores changes nothing in their counts): one posts WARMUP events through Django's
test client, the other WARMUP + EVENTS; the difference over EVENTS is what one event
costs the request thread (middleware, DRF, the intake service, psycopg and libpq) and
the pushes it hands to an event loop thread, as under Daphne. Not Daphne's HTTP
handling and not PostgreSQL (another process), nor the round trips' kernel time. To compare two builds, run this section in each, one after the other.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import random
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

from bench.common import Figure, report

EVENTS = 40
WARMUP = 5
ROOT = Path(__file__).resolve().parent.parent
CHILD_TIMEOUT_S = 1800
PUSHES_SETTLE_S = 1.0
COLLECTED = re.compile(rb"Collected : (\d+)")
CALLGRIND_OPTIONS = ("--tool=callgrind", "--callgrind-out-file=/dev/null")


def run() -> list[Figure]:
    from bench import intake, spatial  # (models: after django.setup(), as in every section)

    valgrind = shutil.which("valgrind")
    if valgrind is None:
        report("instructions", "valgrind is missing: `bash scripts/provision.sh --bench` installs it")
        return []
    spatial.ensure_cameras()  # the same million cameras the intake section ranks
    intake.ensure_center()
    intake.ensure_partner()
    report("load", f"{WARMUP} events to warm up, then {EVENTS} counted, through Django's test client")
    callgrind = (valgrind, *CALLGRIND_OPTIONS)
    children = {
        events: subprocess.Popen(
            [*callgrind, sys.executable, "-m", "bench.instructions", str(events)],
            cwd=ROOT,
            env=dict(os.environ, PYTHONHASHSEED="0"),  # the same dict and set orders in both
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        for events in (0, EVENTS)
    }
    counts = {events: collected(child) for events, child in children.items()}
    per_event = (counts[EVENTS] - counts[0]) / EVENTS
    report("instructions", f"{counts[0]:,} (warm-up only) and {counts[EVENTS]:,} (+{EVENTS} events)")
    figure = Figure("intake instructions per event (request + push threads)", per_event / 1e6, "M")
    report(figure.name, figure.shown())
    return [figure]


def collected(child: subprocess.Popen[bytes]) -> int:
    """The child's instruction count from callgrind's summary, once it has finished."""
    _, err = child.communicate(timeout=CHILD_TIMEOUT_S)
    found = COLLECTED.search(err)
    if child.returncode != 0 or found is None:
        raise RuntimeError(
            f"callgrind child failed ({child.returncode}):\n{err.decode(errors='replace')[-2000:]}"
        )
    return int(found.group(1))


def child(events: int) -> None:
    """Under callgrind: post WARMUP + `events` new events, each must be a 201."""
    import django

    django.setup()
    from django.test import Client

    from bench import intake
    from partners.models import Partner
    from partners.services import api_key_create
    from smartcity.publisher import publisher_bind

    # Pushes go to an event loop in a thread of its own, as under Daphne (smartcity/http.py
    # binds the serving loop); without one, each push would start a thread and a loop.
    loop = asyncio.new_event_loop()
    threading.Thread(target=loop.run_forever, daemon=True).start()
    publisher_bind(loop)

    partner = Partner.objects.get(slug=intake.PARTNER_SLUG)
    _, key = api_key_create(partner=partner, name="bench instructions", actor="bench")  # both children alike
    client = Client(HTTP_HOST="127.0.0.1")
    rng = random.Random(intake.LOAD_SEED)  # the same points in both children
    tag = f"{dt.datetime.now(dt.UTC):%Y%m%d%H%M%S}-{os.getpid()}"
    for n in range(WARMUP + events):
        body = intake.event_body(f"instr-{tag}-{n}", rng)
        response = client.post(
            "/api/v1/events/",
            json.dumps(body),
            content_type="application/json",
            HTTP_AUTHORIZATION=f"Bearer {key}",
        )
        if response.status_code != 201:
            raise SystemExit(f"event {n}: {response.status_code} {response.content[:300]!r}")
    time.sleep(PUSHES_SETTLE_S)  # the last events' pushes leave before the count ends


if __name__ == "__main__":
    child(int(sys.argv[1]))
