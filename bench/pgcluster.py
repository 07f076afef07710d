"""A durable PostgreSQL for the benches: the tests' own harness (``tests/postgres.py``:
Debian's ``postgresql``, initdb in a temporary directory, a Unix socket only, stopped and
deleted after), started with the settings a production server keeps.

Unlike the tests (which turn fsync off), every durability setting is on and said so:
``fsync=on``, ``synchronous_commit=on``, ``full_page_writes=on``; each bench child reads
``synchronous_commit`` and ``fsync`` back from the connection it commits on
(:data:`CHECK_SQL`) and the bench refuses a figure taken at other settings. The server's
processes can be pinned to one CPU (the postmaster's affinity is inherited by every
backend it forks).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

#: The server's settings for every bench run: durable commits, room for two nodes and the
#: peers' pools, a shared_buffers that holds the 1M-row list's working set.
OPTIONS = ("-c fsync=on -c synchronous_commit=on -c full_page_writes=on "
           "-c listen_addresses='' -c max_connections=200 -c shared_buffers=512MB "
           "-c max_wal_size=4GB -c checkpoint_timeout=30min")
DURABLE = {"synchronous_commit": "on", "fsync": "on"}
CHECK_SQL = "SELECT current_setting('synchronous_commit'), current_setting('fsync')"


def _harness() -> Any:
    """tests/postgres.py, imported from the tests folder (its helpers live there)."""
    tests = str(ROOT / "tests")
    if tests not in sys.path:
        sys.path.insert(0, tests)
    import postgres

    return postgres


@contextlib.contextmanager
def cluster(cpu: int | None = None) -> Iterator[Any]:
    """A running durable PostgreSQL (the harness's ``Cluster``: ``url(dbname)``,
    ``bindir``, ``root``), its processes on ``cpu`` when given."""
    harness = _harness()
    running = harness.start_cluster(OPTIONS)
    try:
        if cpu is not None:
            pin(running.root / "data", cpu)
        yield running
    finally:
        harness.stop_cluster(running)


def pin(data: Path, cpu: int | str) -> None:
    """The postmaster and its children (the backends forked later inherit it) on ``cpu``
    (a CPU or a taskset list such as ``0-1``)."""
    postmaster = (data / "postmaster.pid").read_text().split()[0]
    children = subprocess.run(["pgrep", "-P", postmaster], capture_output=True, text=True,
                              check=False).stdout.split()
    for pid in [postmaster, *children]:
        subprocess.run(["taskset", "-p", "-c", str(cpu), pid], capture_output=True, check=False)


def unpin(data: Path) -> None:
    """The server's processes back on every CPU."""
    pin(data, f"0-{(os.cpu_count() or 1) - 1}")


def create_database(running: Any, name: str) -> str:
    """A new empty database on ``running``; its URL."""
    psql = str(running.bindir / "psql")
    subprocess.run([psql, "-q", "-v", "ON_ERROR_STOP=1", running.url(), "-c",
                    f'CREATE DATABASE "{name}"'], check=True, capture_output=True)
    return str(running.url(name))


def drop_database(running: Any, name: str) -> None:
    psql = str(running.bindir / "psql")
    subprocess.run([psql, "-q", running.url(), "-c",
                    f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'], check=False,
                   capture_output=True)


def checked(settings: tuple[str, str] | list[str]) -> dict[str, str]:
    """A child's (synchronous_commit, fsync) as read on its connection, or RuntimeError."""
    got = dict(zip(DURABLE, settings, strict=True))
    if got != DURABLE:
        raise RuntimeError(f"asked for {DURABLE}, the connection has {got}")
    return got
