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


@contextmanager
def postgres_server() -> Iterator[str]:
    """Start a server; yield its SQLAlchemy URL (`postgresql+psycopg2://postgres@127.0.0.1:PORT/postgres`)."""
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
    data, port = root / "data", _free_port()

    def run(*command: str) -> None:
        done = subprocess.run([*as_owner, *command], cwd=root, capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            log = (root / "server.log").read_text() if (root / "server.log").exists() else ""
            raise RuntimeError(f"{' '.join(command[:2])} failed: {done.stdout}{done.stderr}{log}")

    try:
        run(str(folder / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync")
        options = f"-c listen_addresses=127.0.0.1 -p {port} -k {root} -c fsync=off -c max_connections=50"
        run(str(folder / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(root / "server.log"), "-w", "-t", "60",
            "start")
        try:
            yield f"postgresql+psycopg2://postgres@127.0.0.1:{port}/postgres"
        finally:
            run(str(folder / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop")
    finally:
        shutil.rmtree(root, ignore_errors=True)
