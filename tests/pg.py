"""A real PostgreSQL 15 server for tests and benches: initdb into a fresh directory, listen on loopback.

:class:`PgServer` runs ``initdb`` and ``postgres`` as the ``postgres`` user when this runs as root (PostgreSQL
refuses to run as root), as the current user otherwise. The data directory, its unix socket and its log live in one
directory of their own; fsync stays on, as in production. ``needs_postgres`` skips a test when the server binaries
are missing (Debian package postgresql-15, which ``make deps`` installs as root).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest

PG_BIN = Path(os.environ.get("ROOST_PG_BIN", "/usr/lib/postgresql/15/bin"))
USER = "roost"
DATABASE = "roost"
_START_TIMEOUT_S = 30.0


def postgres_missing() -> str | None:
    """Why a PostgreSQL server cannot be started here, or None."""
    for tool in ("initdb", "postgres"):
        if not (PG_BIN / tool).exists():
            return (
                f"PostgreSQL 15 is not installed ({PG_BIN / tool} is missing): run `make deps` as root (postgresql-15)"
            )
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root without a `postgres` user to run PostgreSQL as: install postgresql-15 (make deps)"
    return None


needs_postgres = pytest.mark.skipif(postgres_missing() is not None, reason=str(postgres_missing()))


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class PgServer:
    """One PostgreSQL server in a directory of its own; ``dsn`` names the database ``roost`` (created at start)."""

    def __init__(self, base_dir: Path | None = None, *, settings: dict[str, str] | None = None) -> None:
        self._base_dir = base_dir
        self.settings = {"fsync": "on", "max_connections": "200", "shared_buffers": "128MB", **(settings or {})}
        self.dir: Path | None = None
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None
        self._as_root = os.geteuid() == 0

    # -- paths and identity ----------------------------------------------------------------------------------------

    def _make_dir(self) -> Path:
        """A directory the server's user can reach: under ``base_dir`` if that is traversable, else under /tmp.

        pytest's temporary directories are mode 0700 for root, so the ``postgres`` user cannot enter them; a unix
        socket path must also stay under about 100 characters.
        """
        parent = self._base_dir
        if parent is None or self._as_root or len(str(parent)) > 60:
            parent = Path(tempfile.gettempdir())
        d = Path(tempfile.mkdtemp(prefix="roost-pg-", dir=parent))
        if self._as_root:
            pw = pwd.getpwnam("postgres")
            os.chown(d, pw.pw_uid, pw.pw_gid)
        return d

    def _popen_kwargs(self) -> dict[str, Any]:
        if not self._as_root:
            return {}
        return {"user": "postgres", "group": "postgres", "extra_groups": [], "cwd": self.dir}

    @property
    def data_dir(self) -> Path:
        assert self.dir is not None, "start() the server first"
        return self.dir / "data"

    @property
    def log_path(self) -> Path:
        assert self.dir is not None, "start() the server first"
        return self.dir / "postgres.log"

    def dsn_for(self, database: str) -> str:
        """A libpq connection string for ``database`` over TCP on loopback."""
        return f"postgresql://{USER}@127.0.0.1:{self.port}/{database}"

    @property
    def dsn(self) -> str:
        """The DSN of the database ``roost``."""
        return self.dsn_for(DATABASE)

    # -- life cycle --------------------------------------------------------------------------------------------------

    def start(self) -> PgServer:
        """initdb, start the server, wait until it accepts connections, create the database ``roost``."""
        self.dir = self._make_dir()
        env = {**os.environ, "LC_ALL": "C.UTF-8", "LANG": "C.UTF-8", "TZ": "UTC"}
        initdb = [str(PG_BIN / "initdb"), "-D", str(self.data_dir), "-A", "trust", "-U", USER]
        initdb += ["-E", "UTF8", "--locale=C.UTF-8", "--no-instructions"]
        init = subprocess.run(
            initdb,
            capture_output=True,
            env=env,
            check=False,
            **self._popen_kwargs(),
        )
        if init.returncode != 0:
            raise RuntimeError(f"initdb failed ({init.returncode}): {init.stderr.decode(errors='replace')}")
        for attempt in range(5):
            self.port = free_port()
            args = [str(PG_BIN / "postgres"), "-D", str(self.data_dir), "-p", str(self.port), "-k", str(self.dir),
                    "-c", "listen_addresses=127.0.0.1", "-c", "logging_collector=off"]  # fmt: skip
            for key, value in self.settings.items():
                args += ["-c", f"{key}={value}"]
            log = self.log_path.open("ab")
            self.process = subprocess.Popen(
                args, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True, **self._popen_kwargs()
            )
            log.close()
            if self._wait_ready():
                break
            self._kill()
            if attempt == 4:
                raise RuntimeError(f"PostgreSQL did not start: {self.log_path.read_text(errors='replace')[-2000:]}")
        with psycopg.connect(self.dsn_for("postgres"), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {DATABASE}")
        return self

    def _wait_ready(self) -> bool:
        assert self.process is not None
        deadline = time.monotonic() + _START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False  # e.g. the port was taken between free_port() and bind
            with (
                contextlib.suppress(psycopg.OperationalError),
                psycopg.connect(self.dsn_for("postgres"), connect_timeout=2),
            ):
                return True
            time.sleep(0.05)
        return False

    def _kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def stop(self, *, remove: bool = True) -> None:
        """Fast shutdown (SIGINT), SIGKILL after 20 s; the directory removed unless ``remove`` is False."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self._kill()
        self.process = None
        if remove and self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> PgServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- databases and figures ---------------------------------------------------------------------------------------

    def create_database(self, name: str) -> str:
        """Create database ``name`` (lower-case letters, digits, underscores); its DSN."""
        if not name.replace("_", "").isalnum() or not name.islower():
            raise ValueError(f"database name {name!r}: use lower-case letters, digits and underscores")
        with psycopg.connect(self.dsn_for("postgres"), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return self.dsn_for(name)

    def drop_database(self, name: str) -> None:
        """Drop database ``name``, disconnecting whoever is still connected."""
        with psycopg.connect(self.dsn_for("postgres"), autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    def pids(self) -> list[int]:
        """The postmaster and its children (backends, writer, checkpointer, ...)."""
        if self.process is None:
            return []
        root = self.process.pid
        out = [root]
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                with contextlib.suppress(OSError, IndexError, ValueError):
                    stat = (entry / "stat").read_text()
                    if int(stat[stat.rindex(")") + 2 :].split()[1]) == root:
                        out.append(int(entry.name))
        return out

    def rss_mb(self) -> float:
        """Memory of the server's processes in MB: their proportional set sizes (PSS) summed, so the shared buffers
        every backend maps count once, not once per process as RSS would."""
        total_kb = 0
        for pid in self.pids():
            path = Path(f"/proc/{pid}/smaps_rollup")
            with contextlib.suppress(OSError):
                for line in path.read_text().splitlines():
                    if line.startswith("Pss:"):
                        total_kb += int(line.split()[1])
                        break
        return total_kb / 1024
