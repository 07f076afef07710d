"""A real PostgreSQL for the tests: Debian's ``postgresql`` package (installed with apt-get
when missing), a cluster made by initdb in a temporary directory, listening only on a Unix
socket there (no port to collide with anything else on the machine), stopped and deleted at
the end of the session. As root, the server runs as the ``postgres`` user (PostgreSQL
refuses to run as root); otherwise as the current user.

Fixtures (registered by ``pytest_plugins`` in conftest.py):

* ``postgres_cluster`` (session): the running server, started on first use only, so a run
  that needs no PostgreSQL pays nothing.
* ``postgres_url``: a new, empty database on it for one test, dropped after.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import pytest
from debian_tools import install
from support import eventually

from toombos_edge.store.postgres.database import PgDatabase

START_DEADLINE = 60.0  #: seconds for the server to accept connections (a loaded CI machine)
#: Durability is not what these tests are about: no fsync makes initdb and commits fast.
SERVER_OPTIONS = ("-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
                  "-c listen_addresses='' -c max_connections=40 -c shared_buffers=16MB")


def postgres_bindir() -> Path:
    """The newest installed PostgreSQL's bin directory, installing Debian's package first
    when there is none (initdb and pg_ctl are not on PATH on Debian)."""
    def newest() -> Path | None:
        found = [p.parent for p in Path("/usr/lib/postgresql").glob("*/bin/initdb")]
        if not found and (on_path := shutil.which("initdb")):
            return Path(on_path).parent
        return max(found, key=lambda p: int(re.sub(r"\D", "", p.parent.name) or 0),
                   default=None)

    if (bindir := newest()) is None:
        install(["postgresql"], "the PostgreSQL tests need Debian's postgresql package")
        bindir = newest()
    assert bindir is not None, "apt-get installed postgresql but no initdb was found"
    return bindir


@dataclass(frozen=True)
class Cluster:
    """A running PostgreSQL: its socket directory and superuser."""

    bindir: Path
    root: Path  #: data in root/data, the socket and the log in root itself
    user: str = "postgres"

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{self.user}@/{database}?host={self.root}"

    @property
    def log(self) -> Path:
        return self.root / "server.log"

    def log_tail(self) -> str:
        try:
            return self.log.read_text(errors="replace")[-3000:]
        except OSError:
            return "(no server log)"


def _run_as_owner(cluster_root: Path, command: list[str]) -> subprocess.CompletedProcess[str]:
    """Run a PostgreSQL tool as the user that owns the cluster (``postgres`` under root)."""
    owner = "postgres" if os.geteuid() == 0 else None
    return subprocess.run(command, cwd=cluster_root, capture_output=True, text=True,
                          timeout=120, check=False, user=owner, group=owner,
                          extra_groups=[] if owner else None)


def start_cluster(options: str = SERVER_OPTIONS, parent: Path | None = None) -> Cluster:
    """initdb and start a server in a new temporary directory (in ``parent``, else the
    system's); on any failure, stop what started, delete the directory, and fail with the
    server's log. pg_ctl waits for the server (and says at once when it died starting);
    pg_isready then confirms it."""
    bindir = postgres_bindir()
    cluster = Cluster(bindir, Path(tempfile.mkdtemp(prefix="toombos-pg-", dir=parent)))
    try:
        if os.geteuid() == 0:
            shutil.chown(cluster.root, "postgres", "postgres")
        made = _run_as_owner(cluster.root, [
            str(bindir / "initdb"), "-D", str(cluster.root / "data"), "-U", cluster.user,
            "--auth=trust", "--encoding=UTF8", "--locale=C.UTF-8", "--no-sync"])
        assert made.returncode == 0, f"initdb failed:\n{made.stderr[-3000:]}"
        started = _run_as_owner(cluster.root, [
            str(bindir / "pg_ctl"), "start", "-D", str(cluster.root / "data"), "-w",
            "-t", str(int(START_DEADLINE)), "-l", str(cluster.log),
            "-o", f"{options} -c unix_socket_directories='{cluster.root}'"])
        assert started.returncode == 0, (
            f"pg_ctl start failed:\n{started.stderr[-3000:]}\n{cluster.log_tail()}")
        eventually(lambda: subprocess.run(
            [str(bindir / "pg_isready"), "-q", "-h", str(cluster.root), "-U", cluster.user],
            check=False, timeout=10).returncode == 0,
            START_DEADLINE, lambda: f"PostgreSQL did not accept connections:\n"
                                    f"{cluster.log_tail()}", every=0.1)
    except BaseException:
        stop_cluster(cluster)
        raise
    return cluster


def stop_cluster(cluster: Cluster) -> None:
    """Stop the server (immediately: its data goes next) and delete its directory."""
    if (cluster.root / "data" / "postmaster.pid").exists():
        _run_as_owner(cluster.root, [str(cluster.bindir / "pg_ctl"), "stop", "-D",
                                     str(cluster.root / "data"), "-m", "immediate", "-w"])
    shutil.rmtree(cluster.root, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[Cluster]:
    cluster = start_cluster()
    try:
        yield cluster
    finally:
        stop_cluster(cluster)


@pytest.fixture
async def postgres_url(postgres_cluster: Cluster) -> AsyncIterator[str]:
    """The URL of a new empty database, dropped after the test (its connections with it)."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(postgres_cluster.url())
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        yield postgres_cluster.url(name)
        await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture
async def pg_database(postgres_url: str) -> AsyncIterator[PgDatabase]:
    """A migrated PostgreSQL database of its own, pooled, as the stores use it."""
    database = PgDatabase(postgres_url)
    await database.open()
    try:
        yield database
    finally:
        await database.close()
