"""Private Redis and PostgreSQL servers that a fault test may kill and start again.

The machine's shared servers (PostgreSQL on 5432, Redis on 6379) serve every other
session and test run: a fault test never touches them. Each server here runs on a
free port, keeps its data in a temporary directory and is removed at teardown.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from tests.fixtures.live_server import accepts_connections, free_port

PG_USER = "postgres"  # initdb refuses to run as root: as root, the cluster belongs to this user
DEBIAN_PACKAGES = "redis-server postgresql-15 postgresql-15-postgis-3"


class RedisServer:
    """`redis-server` on a free port, without persistence: a restart starts it empty.

    Empty on return is the harsh case: the channel layer's groups and the rate limiter's
    counters are gone too, as after a failover to a fresh replica.
    """

    def __init__(self) -> None:
        self.port = free_port()
        self.workdir = Path(tempfile.mkdtemp(prefix="fault-redis-"))
        self.log = self.workdir / "redis.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> None:
        server = shutil.which("redis-server")
        if server is None:
            raise RuntimeError(f"redis-server not found; apt-get install {DEBIAN_PACKAGES}")
        command = [
            server,
            "--bind",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--save",
            "",
            "--appendonly",
            "no",
        ]
        with self.log.open("ab") as log:
            self.process = subprocess.Popen([*command, "--dir", str(self.workdir)], stdout=log, stderr=log)
        deadline = time.monotonic() + timeout
        while not accepts_connections(self.port):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not start:\n{self.log.read_text(errors='replace')}")
            time.sleep(0.05)

    def kill(self) -> None:
        """SIGKILL: no goodbye to the clients, as when the host dies."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)
        self.process = None

    def stop(self) -> None:
        self.kill()
        shutil.rmtree(self.workdir, ignore_errors=True)


def pg_bin() -> Path:
    """The newest installed PostgreSQL server that has PostGIS installed too (Debian's layout)."""
    versions = sorted(
        (
            path.parent.parent.name
            for path in Path("/usr/share/postgresql").glob("*/extension/postgis.control")
        ),
        key=lambda version: int(version) if version.isdigit() else 0,
    )
    for version in reversed(versions):
        candidate = Path("/usr/lib/postgresql") / version / "bin"
        if (candidate / "initdb").exists():
            return candidate
    raise RuntimeError(f"no PostgreSQL server with PostGIS installed; apt-get install {DEBIAN_PACKAGES}")


class PostgresCluster:
    """A PostgreSQL cluster of its own (initdb in a temporary directory), PostGIS available.

    It listens on 127.0.0.1 only and trusts local connections (a throwaway cluster for
    one test); as root it runs as the `postgres` OS user. fsync is off, which only
    matters if the machine itself dies; commits stay synchronous, so a crash of
    PostgreSQL loses nothing that was acknowledged — as in production.
    """

    def __init__(self) -> None:
        self.bin = pg_bin()
        self.port = free_port()
        self.workdir = Path(tempfile.mkdtemp(prefix="fault-pg-"))
        self.data = self.workdir / "data"
        self.logfile = self.workdir / "postgres.log"
        self.as_root = os.geteuid() == 0
        if self.as_root:
            shutil.chown(self.workdir, PG_USER, PG_USER)

    def url(self, database: str) -> str:
        return f"postgis://postgres@127.0.0.1:{self.port}/{database}"

    def run(self, tool: str, *args: str, timeout: float = 60) -> str:
        """A PostgreSQL tool, run as the cluster's owner."""
        command = [str(self.bin / tool), *args]
        if self.as_root:
            command = ["runuser", "-u", PG_USER, "--", *command]
        completed = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
        if completed.returncode != 0:
            raise RuntimeError(f"{tool} {' '.join(args)} failed:\n{completed.stdout}\n{completed.stderr}")
        return completed.stdout

    def init(self) -> None:
        self.run("initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust", "--no-sync")

    def start(self) -> None:
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={self.workdir} "
            "-c fsync=off -c full_page_writes=off"
        )
        self.run("pg_ctl", "-D", str(self.data), "-l", str(self.logfile), "-o", options, "-w", "start")

    def crash(self) -> None:
        """Immediate shutdown: every backend dies at once, as in a crash or a failover."""
        self.run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")

    def psql(self, sql: str, database: str = "postgres") -> str:
        return self.run(
            "psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-XtAqc", sql, database
        )

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
                self.crash()
        shutil.rmtree(self.workdir, ignore_errors=True)
