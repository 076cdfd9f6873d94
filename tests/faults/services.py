"""Private Redis and PostgreSQL servers that a fault test may stop, kill and start again.

The machine's shared servers (PostgreSQL on 5432, Redis on 6379) serve every other
session and test run: a fault test never touches them. Each server here runs on a
free port, keeps its data in a temporary directory and is removed at teardown.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from tests.fixtures.live_server import accepts_connections, free_port

PG_BIN = Path("/usr/lib/postgresql/15/bin")
PG_USER = "postgres"  # initdb refuses to run as root; the cluster belongs to this OS user


class RedisServer:
    """`redis-server` on a free port, without persistence: a restart starts it empty.

    Empty on return is the harsh case: the channel layer's groups and the rate limiter's
    counters are gone too, as after a failover to a fresh replica.
    """

    def __init__(self) -> None:
        self.port = free_port()
        self.workdir = Path(tempfile.mkdtemp(prefix="fault-redis-"))
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> None:
        log = (self.workdir / "redis.log").open("ab")
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--bind",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.workdir),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        wait_for_port(self.port, timeout, self.process, self.workdir / "redis.log")

    def kill(self) -> None:
        """SIGKILL: no goodbye to the clients, as when the host dies."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)
        self.process = None

    def stop(self) -> None:
        self.kill()
        shutil.rmtree(self.workdir, ignore_errors=True)


class PostgresCluster:
    """A PostgreSQL 15 cluster of its own (initdb in a temporary directory), PostGIS available.

    It runs as the `postgres` OS user and listens on 127.0.0.1 only, trusting local
    connections (a throwaway cluster for one test). fsync is off, which only matters if
    the machine itself dies; commits stay synchronous, so a crash of PostgreSQL loses
    nothing that was acknowledged — as in production.
    """

    def __init__(self) -> None:
        self.port = free_port()
        self.workdir = Path(tempfile.mkdtemp(prefix="fault-pg-"))
        self.data = self.workdir / "data"
        self.logfile = self.workdir / "postgres.log"
        shutil.chown(self.workdir, PG_USER, PG_USER)

    def url(self, database: str) -> str:
        return f"postgis://postgres@127.0.0.1:{self.port}/{database}"

    def as_postgres(self, *command: str, timeout: float = 60) -> str:
        completed = subprocess.run(
            ["runuser", "-u", PG_USER, "--", *command],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if completed.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed:\n{completed.stdout}\n{completed.stderr}")
        return completed.stdout

    def init(self) -> None:
        self.as_postgres(
            str(PG_BIN / "initdb"), "-D", str(self.data), "-U", "postgres", "-A", "trust", "--no-sync"
        )

    def start(self) -> None:
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={self.workdir} "
            "-c fsync=off -c full_page_writes=off"
        )
        self.as_postgres(
            str(PG_BIN / "pg_ctl"),
            "-D",
            str(self.data),
            "-l",
            str(self.logfile),
            "-o",
            options,
            "-w",
            "start",
        )

    def crash(self) -> None:
        """Immediate shutdown: every backend dies at once, as in a crash or a failover."""
        self.as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop")

    def psql(self, sql: str, database: str = "postgres") -> str:
        return self.as_postgres(
            "psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-XtAqc", sql, database
        )

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            subprocess.run(
                [
                    "runuser",
                    "-u",
                    PG_USER,
                    "--",
                    str(PG_BIN / "pg_ctl"),
                    "-D",
                    str(self.data),
                    "-m",
                    "immediate",
                    "stop",
                ],
                capture_output=True,
                timeout=30,
                check=False,
            )
        shutil.rmtree(self.workdir, ignore_errors=True)


def wait_for_port(port: int, timeout: float, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}:\n{log.read_text(errors='replace')}")
        if accepts_connections(port):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port} after {timeout} s")
