"""A PostgreSQL cluster of the tests' own: initdb in a fresh directory, a free loopback port, stopped
(and deleted) after the session. Never the machine's own cluster on 5432.

PostgreSQL refuses to run as root, so as root the cluster belongs to the `postgres` system user
(Debian's postgresql package creates it) and its directory lives outside pytest's root-only tmp tree.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg

BIN_DIRS = (
    "/usr/lib/postgresql/17/bin",
    "/usr/lib/postgresql/16/bin",
    "/usr/lib/postgresql/15/bin",
)
HOST = "127.0.0.1"


class PostgresUnavailable(RuntimeError):
    """PostgreSQL's server programs are not installed."""


def find_bin() -> Path:
    for directory in BIN_DIRS:
        if Path(directory, "initdb").is_file():
            return Path(directory)
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    raise PostgresUnavailable(
        "PostgreSQL is not installed: install Debian's `postgresql` package (tests/run does this)"
    )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


class PostgresServer:
    """`durable=False` (the tests) turns fsync off: they kill the collector, never this server. The
    benchmark keeps PostgreSQL's defaults, so its figures hold for a real server."""

    def __init__(self, *, durable: bool = False) -> None:
        self.durable = durable
        self._bin = find_bin()
        self.root = Path(tempfile.mkdtemp(prefix="village-collector-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "postgres.log"
        self.port = free_port()
        self._as: list[str] = []
        if os.geteuid() == 0:
            user = pwd.getpwnam("postgres")
            os.chown(self.root, user.pw_uid, user.pw_gid)
            self.root.chmod(0o700)
            self._as = ["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}",
                        "--init-groups", "--"]  # fmt: skip

    def _run(self, *args: str) -> None:
        subprocess.run(
            [*self._as, *args], check=True, capture_output=True, text=True, cwd=self.root
        )

    def start(self) -> PostgresServer:
        self._run(str(self._bin / "initdb"), "-D", str(self.data), "-A", "trust", "-U",
                  "postgres", "-E", "UTF8", "--no-sync", "--no-instructions")  # fmt: skip
        options = f"-c listen_addresses={HOST} -p {self.port} -k {self.root} -c max_connections=50"
        if not self.durable:
            options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        self._run(str(self._bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-o",
                  options, "-w", "-t", "60", "start")  # fmt: skip
        deadline = time.monotonic() + 30
        while True:
            try:
                with psycopg.connect(self.url("postgres"), connect_timeout=2):
                    return self
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def url(self, database: str) -> str:
        return f"postgresql://postgres@{HOST}:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self._run(str(self._bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop")
        shutil.rmtree(self.root, ignore_errors=True)
