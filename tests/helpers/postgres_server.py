"""A throwaway PostgreSQL server for tests: `initdb` + `pg_ctl` on 127.0.0.1, data in a temporary folder.

PostgreSQL refuses to run as root, so as root the server runs as the `postgres` user (`runuser -u postgres --`).
The binaries come from the Debian `postgresql` package (`/usr/lib/postgresql/<version>/bin`, which `.ci/run`
installs) or from PATH. Without them the tests that need a server are skipped, unless
`HF_SEARCH_WANDB_REQUIRE_POSTGRES=1` (set by `.ci/run`), which turns the skip into a failure.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


def postgres_bin() -> Path | None:
    """The folder holding `initdb` and `pg_ctl` (the newest Debian version first), or None."""
    for folder in sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: p.parent.name, reverse=True):
        if (folder / "initdb").is_file() and (folder / "pg_ctl").is_file():
            return folder
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb and shutil.which("pg_ctl") else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PostgresServer:
    """A started throwaway server: `url` (SQLAlchemy, psycopg2), `plain_url` (`postgresql://`, no driver named),
    and `stop()` / `start()` to take it away and bring it back on the same port with the same data."""

    def __init__(self, folder: Path, root: Path, port: int, as_owner: list[str]) -> None:
        self.folder, self.root, self.port, self.as_owner = folder, root, port, as_owner
        self.data = root / "data"
        self.plain_url = f"postgresql://postgres@127.0.0.1:{port}/postgres"
        self.url = self.plain_url.replace("postgresql://", "postgresql+psycopg2://")

    def _run(self, *command: str) -> None:
        done = subprocess.run([*self.as_owner, *command], cwd=self.root, capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            log = (self.root / "server.log").read_text() if (self.root / "server.log").exists() else ""
            raise RuntimeError(f"{' '.join(command[:2])} failed: {done.stdout}{done.stderr}{log}")

    def start(self) -> None:
        options = f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.root} -c fsync=off -c max_connections=50"
        self._run(str(self.folder / "pg_ctl"), "-D", str(self.data), "-o", options, "-l", str(self.root / "server.log"),
                  "-w", "-t", "60", "start")

    def stop(self, mode: str = "immediate") -> None:
        """`pg_ctl stop -m MODE`: `immediate` drops every connection at once, as a crash or a lost host does."""
        self._run(str(self.folder / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")

    def running(self) -> bool:
        done = subprocess.run([*self.as_owner, str(self.folder / "pg_ctl"), "-D", str(self.data), "status"],
                              cwd=self.root, capture_output=True, text=True, timeout=60)
        return done.returncode == 0


@contextmanager
def postgres_server() -> Iterator[str]:
    """Start a server; yield its SQLAlchemy URL (`postgresql+psycopg2://postgres@127.0.0.1:PORT/postgres`)."""
    with controlled_postgres_server() as server:
        yield server.url


@contextmanager
def controlled_postgres_server() -> Iterator[PostgresServer]:
    """Start a server; yield it as a `PostgresServer` (stopped and removed at the end, whatever state it is in)."""
    folder = postgres_bin()
    missing = "PostgreSQL binaries (apt-get install postgresql)" if folder is None else None
    try:
        import psycopg2  # noqa: F401
    except ImportError:
        missing = "psycopg2 (pip install psycopg2-binary)"
    if missing is not None:
        if os.environ.get("HF_SEARCH_WANDB_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"{missing} not found, and HF_SEARCH_WANDB_REQUIRE_POSTGRES=1")
        pytest.skip(f"needs {missing}")
    assert folder is not None
    as_owner = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    root = Path(tempfile.mkdtemp(prefix="hfsw-postgres-"))
    if as_owner:
        shutil.chown(root, "postgres", "postgres")
    server = PostgresServer(folder, root, _free_port(), as_owner)
    try:
        server._run(str(folder / "initdb"), "-D", str(server.data), "-U", "postgres", "--auth=trust", "-E", "UTF8",
                    "--no-sync")
        server.start()
        try:
            yield server
        finally:
            if server.running():
                server.stop()
    finally:
        shutil.rmtree(root, ignore_errors=True)
