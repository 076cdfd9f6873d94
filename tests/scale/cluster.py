"""The production topology on one machine: two Daphne instances, two Celery workers, one beat.

Every process is a real subprocess on the test PostGIS database and the test Redis, as
`deploy/` runs them behind nginx. The test talks to the instances as browsers and
partners do (HTTP, WebSockets); sockets are read on one background event loop so test
bodies stay plain synchronous code that can also use the ORM.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import aiohttp

from smartcity.celery import app as celery_app
from tests.fixtures.celery_worker import CeleryWorker
from tests.fixtures.live_server import ROOT, LiveDaphne, live_env
from tests.fixtures.processes import process_stop


def wait_until(
    condition: Callable[[], object],
    timeout: float,
    what: str,
    state: Callable[[], object] | None = None,
) -> None:
    """Poll `condition` until it is true; fail naming `what` (and `state()`) after `timeout` s."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= deadline:
            detail = f"\n{state()}" if state is not None else ""
            raise AssertionError(f"timed out after {timeout} s waiting for {what}{detail}")
        time.sleep(0.1)


class CeleryBeat:
    """`celery beat` in a subprocess, with a schedule file of its own (a fresh start each time)."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.workdir = Path(tempfile.mkdtemp(prefix="beat-"))
        self.log: IO[bytes] = (self.workdir / "beat.log").open("wb")
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30.0) -> None:
        self.process = process = subprocess.Popen(
            [
                str(Path(sys.executable).parent / "celery"),
                "-A",
                "smartcity",
                "beat",
                "--loglevel=INFO",
                f"--schedule={self.workdir / 'schedule'}",
            ],
            cwd=ROOT,
            env=self.env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        # Ready once it has sent its first task (every schedule here is under a second).
        wait_until(lambda: "Sending due task" in self.output() or process.poll() is not None, timeout, "beat")
        if process.poll() is not None:
            raise RuntimeError(f"celery beat exited:\n{self.output()}")

    def output(self) -> str:
        return (self.workdir / "beat.log").read_text(errors="replace")

    def stop(self) -> None:
        process_stop(self.process)
        self.log.close()


@dataclass
class Cluster:
    """Two web instances and two workers sharing one Redis and one PostGIS, plus one beat."""

    web: tuple[LiveDaphne, LiveDaphne]
    workers: tuple[CeleryWorker, CeleryWorker]
    beat: CeleryBeat

    def tasks_run(self, task_name: str, timeout: float = 15.0) -> dict[str, int]:
        """How many times each worker has run `task_name` since it started (Celery's own counters).

        A solo-pool worker answers only between tasks, so ask again until both have.
        """
        hostnames = [w.hostname for w in self.workers]
        deadline = time.monotonic() + timeout
        while True:
            stats = celery_app.control.inspect(destination=hostnames, timeout=1).stats() or {}
            if len(stats) == len(hostnames) or time.monotonic() > deadline:
                return {name: int(s.get("total", {}).get(task_name, 0)) for name, s in stats.items()}


START_TIMEOUT_S = 90.0


@contextmanager
def cluster_running(**env_overrides: str) -> Iterator[Cluster]:
    """Start every process at once (start-up is mostly waiting), stop them all afterwards."""
    env = live_env(**env_overrides)
    # Periodic tasks queued by an earlier run's beat must not run against this test's rows.
    celery_app.control.purge()
    cluster = Cluster(
        web=(LiveDaphne(env), LiveDaphne(env)),
        workers=(CeleryWorker(env), CeleryWorker(env)),
        beat=CeleryBeat(env),
    )
    processes: list[Any] = [*cluster.web, *cluster.workers, cluster.beat]
    try:
        with ThreadPoolExecutor(max_workers=len(processes)) as pool:
            # A generous bound: five processes importing Django at once on a busy CI machine.
            for started in [pool.submit(p.start, START_TIMEOUT_S) for p in processes]:
                started.result()
        yield cluster
    finally:
        # In parallel: a worker's warm shutdown alone takes a few seconds.
        with ThreadPoolExecutor(max_workers=len(processes)) as pool:
            list(pool.map(lambda process: process.stop(), processes))
        celery_app.control.purge()


# --- sockets ---------------------------------------------------------------------------


class SocketLoop:
    """One asyncio loop on a daemon thread, where every socket of a test is read."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coroutine: Any) -> Future[Any]:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop)

    def close(self) -> None:
        """Cancel every socket (each closes cleanly, so servers see a disconnect), then stop."""

        async def cancel_all() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(cancel_all(), self.loop).result(timeout=10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5)


@dataclass
class Screen:
    """An operator's dashboard socket (`/ws/operator/`) on one instance, recording every push."""

    server: LiveDaphne
    cookie: str
    messages: list[dict[str, Any]] = field(default_factory=list)
    ready: threading.Event = field(default_factory=threading.Event)
    reader: Future[None] | None = None

    def open(self, loop: SocketLoop) -> Screen:
        self.reader = loop.run(self.read())
        return self

    async def read(self) -> None:
        headers = {"Cookie": self.cookie, "Origin": self.server.url}
        async with (
            aiohttp.ClientSession() as http,
            http.ws_connect(f"{self.server.url}/ws/operator/", headers=headers, heartbeat=None) as ws,
        ):
            snapshot = await ws.receive_json(timeout=15)
            assert snapshot["type"] == "snapshot"
            self.ready.set()
            async for message in ws:
                if message.type == aiohttp.WSMsgType.TEXT:
                    self.messages.append(json.loads(message.data))

    def wait_ready(self, timeout: float = 15) -> None:
        wait_until(
            lambda: self.ready.is_set() or (self.reader is not None and self.reader.done()),
            timeout,
            "snapshot",
        )
        if self.reader is not None and self.reader.done():
            self.reader.result()  # raises what went wrong

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [m for m in list(self.messages) if m.get("type") == kind]

    def created_ids(self) -> list[int]:
        return [m["incident"]["id"] for m in self.of_type("incident.created")]

    def close(self) -> None:
        if self.reader is not None:
            self.reader.cancel()


@dataclass
class Viewer:
    """A live video socket (`/ws/cameras/<id>/live/`): what came, in order, and how it closed."""

    server: LiveDaphne
    camera_id: int
    cookie: str = ""
    share: str = ""
    texts: list[dict[str, Any]] = field(default_factory=list)
    binaries: list[bytes] = field(default_factory=list)
    close_code: int | None = None
    reader: Future[None] | None = None

    def open(self, loop: SocketLoop) -> Viewer:
        self.reader = loop.run(self.read())
        return self

    async def read(self) -> None:
        query = f"?share={self.share}" if self.share else ""
        headers = {"Origin": self.server.url} | ({"Cookie": self.cookie} if self.cookie else {})
        url = f"{self.server.url}/ws/cameras/{self.camera_id}/live/{query}"
        async with aiohttp.ClientSession() as http, http.ws_connect(url, headers=headers) as ws:
            async for message in ws:
                if message.type == aiohttp.WSMsgType.TEXT:
                    self.texts.append(json.loads(message.data))
                elif message.type == aiohttp.WSMsgType.BINARY:
                    self.binaries.append(message.data)
            self.close_code = ws.close_code

    def box_types(self) -> list[bytes]:
        """The first box of every binary message: b"ftyp" (init segment), then b"moof" fragments."""
        return [data[4:8] for data in list(self.binaries)]

    def plays(self) -> bool:
        """An init message, the init segment, and at least a few media fragments after it."""
        boxes = self.box_types()
        return (
            any(t.get("type") == "init" and "avc1." in t.get("mime", "") for t in list(self.texts))
            and b"ftyp" in boxes
            and boxes[boxes.index(b"ftyp") + 1 :].count(b"moof") >= 5
        )

    def describe(self) -> str:
        """What this viewer has seen, for a failure message."""
        reader = self.reader
        failure = (
            reader.exception() if reader is not None and reader.done() and not reader.cancelled() else None
        )
        return (
            f"{self.server.url} camera {self.camera_id} {'share' if self.share else 'operator'}: "
            f"texts={[(t.get('type'), t.get('state')) for t in list(self.texts)]} "
            f"boxes={len(self.binaries)} close={self.close_code} error={failure!r}"
        )

    def close(self) -> None:
        if self.reader is not None:
            self.reader.cancel()
