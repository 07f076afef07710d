"""Two real server processes on one real PostgreSQL, as an operator runs them: one queue,
every job exactly once, each node's sockets see the other's jobs; a node killed mid-run
loses nothing; PostgreSQL restarted under load loses no acknowledged job, and /health says
so while it is down.

The jobs are the slow plugin's (``stop_support``): each attempt appends a line to a ledger
file, so the test sees what ran and how often, whichever process ran it.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import signal
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import aiohttp
import asyncpg
import pytest
from conftest import ServerProcess, http
from postgres import Cluster, _run_as_owner, start_cluster, stop_cluster
from stop_support import make_plugin, starts, submit
from support import eventually_async

pytestmark = pytest.mark.timeout(600)
TERMINAL = {"completed", "partial", "failed", "cancelled"}


def node_env(tmp_path: Path, url: str, name: str, **settings: str) -> dict[str, str]:
    return {**make_plugin(tmp_path / "plugin"), "TOOMBOS_DATABASE_URL": url,
            "TOOMBOS_NODE_ID": name, "TOOMBOS_JOB_POLL_SECONDS": "1", **settings}


def start_nodes(server_process: Callable[..., ServerProcess], tmp_path: Path, url: str,
                **settings: str) -> tuple[ServerProcess, ServerProcess, str]:
    """Node A, then node B with A's admin key (the database holds it; B makes none)."""
    a = server_process(data_dir=tmp_path / "a" / "data", env=node_env(tmp_path, url, "a",
                                                                       **settings))
    key = a.admin_key()
    (tmp_path / "b" / "data").mkdir(parents=True)
    (tmp_path / "b" / "data" / "admin.key").write_text(key + "\n")
    b = server_process(data_dir=tmp_path / "b" / "data", env=node_env(tmp_path, url, "b",
                                                                       **settings))
    return a, b, key


async def submit_many(base_of: Callable[[int], str], key: str, count: int,
                      **params: object) -> list[str]:
    """``count`` jobs, job n to ``base_of(n)``, 16 requests at a time; each acknowledged."""
    ids: list[str] = [""] * count
    gate = asyncio.Semaphore(16)
    async with aiohttp.ClientSession() as session:

        async def one(n: int) -> None:
            async with gate:
                ids[n] = await submit(session, base_of(n), key, "sleep", **params)

        await asyncio.gather(*(one(n) for n in range(count)))
    return ids


async def statuses(url: str, ids: list[str]) -> dict[str, str]:
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch("SELECT id, status FROM jobs WHERE id = ANY($1)", ids)
    finally:
        await conn.close()
    return {row["id"]: row["status"] for row in rows}


async def all_ended(url: str, ids: list[str]) -> bool:
    found = await statuses(url, ids)
    return len(found) == len(ids) and set(found.values()) <= TERMINAL


def finished_here(node: ServerProcess, key: str) -> int:
    """Jobs this node ran to completion, from its Prometheus metrics."""
    request = urllib.request.Request(node.base + "/metrics",
                                     headers={"Authorization": f"Bearer {key}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        text = response.read().decode()
    match = re.search(r'^toombos_jobs_finished_total\{kind="sleep",outcome="completed"\} '
                      r"(\S+)$", text, re.M)
    return int(float(match.group(1))) if match else 0


class SocketWatch:
    """A dashboard's /ws/jobs on one node: the ids of the jobs it saw complete."""

    def __init__(self, base: str, key: str) -> None:
        self._url, self._key = base.replace("http", "ws", 1) + "/ws/jobs", key
        self.completed: set[str] = set()
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> SocketWatch:
        connected = asyncio.Event()
        self._task = asyncio.create_task(self._run(connected))
        await asyncio.wait_for(connected.wait(), 20)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    async def _run(self, connected: asyncio.Event) -> None:
        async with aiohttp.ClientSession() as session, session.ws_connect(
                self._url, params={"token": self._key}) as ws:
            connected.set()
            async for message in ws:
                job = message.json().get("job") or {}
                if job.get("status") == "completed":
                    self.completed.add(job["job_id"])
                    self._changed.set()

    async def until_completed(self, ids: set[str], deadline: float) -> None:
        async with asyncio.timeout(deadline):
            while not ids <= self.completed:
                self._changed.clear()
                await self._changed.wait()


async def test_a_thousand_jobs_half_to_each_node_run_exactly_once_and_both_sockets_see_all(
    postgres_url: str, server_process: Callable[..., ServerProcess], tmp_path: Path,
) -> None:
    a, b, key = start_nodes(server_process, tmp_path, postgres_url)
    ledger = tmp_path / "ledger"
    async with SocketWatch(a.base, key) as on_a, SocketWatch(b.base, key) as on_b:
        submitted = await submit_many(lambda n: (a, b)[n % 2].base, key, 1000, seconds=0,
                                      ledger=str(ledger))
        ids = set(submitted)
        assert len(ids) == 1000
        await eventually_async(lambda: all_ended(postgres_url, submitted), 180,
                               lambda: f"{len(starts(ledger))} of 1000 started")
        ran = starts(ledger)
        assert set(ran) == ids and set(ran.values()) == {1}  # every job once, none twice
        assert set((await statuses(postgres_url, submitted)).values()) == {"completed"}
        # Each node's socket saw every job complete, those the other node ran too.
        await on_a.until_completed(ids, 60)
        await on_b.until_completed(ids, 60)
    # Both nodes took jobs from the one queue, and each counts only the jobs it ran.
    ran_here = [finished_here(node, key) for node in (a, b)]
    assert all(ran_here) and sum(ran_here) == 1000, ran_here
    for node in (a, b):
        _status, health = http("GET", node.base + "/health/detailed", key=key)
        assert health["checks"]["nodes"]["status"] == "pass", health


async def test_a_node_killed_mid_run_loses_no_job(
    postgres_url: str, server_process: Callable[..., ServerProcess], tmp_path: Path,
) -> None:
    """kill -9 node B while it runs jobs: A rescues them once their lease ran out (5 s)
    and runs them again; every job ends completed."""
    a, b, key = start_nodes(server_process, tmp_path, postgres_url,
                            TOOMBOS_JOB_LEASE_SECONDS="5", TOOMBOS_JOB_WORKERS="4")
    ledger = tmp_path / "ledger"
    submitted = await submit_many(lambda n: (a, b)[n % 2].base, key, 40, seconds=1,
                                  ledger=str(ledger))

    async def b_runs_jobs() -> bool:
        done = await asyncio.to_thread(finished_here, b, key)
        return done >= 2 and sum(starts(ledger).values()) >= 12

    await eventually_async(b_runs_jobs, 60, "B finished jobs and holds more")
    b.stop(signal.SIGKILL)
    await eventually_async(lambda: all_ended(postgres_url, submitted), 120,
                           lambda: f"{len(starts(ledger))} of 40 started")
    assert set((await statuses(postgres_url, submitted)).values()) == {"completed"}
    again = {job for job, n in starts(ledger).items() if n > 1}
    assert again, "B held no job when killed"  # B's running jobs were run again, on A
    assert set(starts(ledger)) == set(submitted)


@pytest.fixture
def own_cluster() -> Iterator[Cluster]:
    """A PostgreSQL of this test's own, to restart without disturbing the others."""
    cluster = start_cluster()
    try:
        yield cluster
    finally:
        stop_cluster(cluster)


def pg_ctl(cluster: Cluster, *args: str) -> None:
    done = _run_as_owner(cluster.root, [str(cluster.bindir / "pg_ctl"), *args, "-D",
                                        str(cluster.root / "data"), "-w", "-t", "60"])
    assert done.returncode == 0, done.stderr + cluster.log_tail()


async def test_postgresql_restarted_under_load_loses_no_acknowledged_job(
    own_cluster: Cluster, server_process: Callable[..., ServerProcess], tmp_path: Path,
) -> None:
    url = own_cluster.url()
    # The load submits as fast as the nodes answer: the admin key's rate limit (2,400 a
    # minute) would refuse it with 429s, which is not what this test is about.
    a, b, key = start_nodes(server_process, tmp_path, url,
                            TOOMBOS_RATE_LIMIT_ADMIN="1000000000")
    ledger = tmp_path / "ledger"
    acknowledged: list[str] = []
    stop = asyncio.Event()

    async def load() -> None:  # submit all along; a 503 while it is down is not acknowledged
        async with aiohttp.ClientSession() as session:
            n = 0
            while not stop.is_set():
                base = (a, b)[n % 2].base
                n += 1
                with contextlib.suppress(aiohttp.ClientError):
                    async with session.post(
                            base + "/api/jobs", headers={"Authorization": f"Bearer {key}"},
                            json={"kind": "sleep",
                                  "params": {"seconds": 0.05, "ledger": str(ledger)}},
                    ) as response:
                        if response.status == 202:
                            acknowledged.append((await response.json())["job_id"])
                        else:
                            assert response.status == 503, await response.text()
                            await asyncio.sleep(0.05)  # pacing the load, not a wait for state

    loader = asyncio.create_task(load())
    try:
        await eventually_async(lambda: len(acknowledged) >= 50, 60, "load running")
        await asyncio.to_thread(pg_ctl, own_cluster, "stop", "-m", "fast")
        for node in (a, b):
            await eventually_async(lambda node=node: unhealthy(node), 30,
                                   "/health while PostgreSQL is down")
        await asyncio.to_thread(pg_ctl, own_cluster, "start", "-l", str(own_cluster.log),
                                "-o", f"-c unix_socket_directories='{own_cluster.root}'")
        for node in (a, b):
            await eventually_async(
                lambda node=node: healthy(node), 60,
                lambda node=node: f"/health after the restart: "
                                  f"{http('GET', node.base + '/health', timeout=10)}")
        before = len(acknowledged)
        await eventually_async(lambda: len(acknowledged) >= before + 50, 60,
                               "jobs accepted after the restart")
    finally:
        stop.set()
        await loader
    await eventually_async(lambda: all_ended(url, acknowledged), 120,
                           lambda: f"{len(starts(ledger))} of {len(acknowledged)} started")
    assert set((await statuses(url, acknowledged)).values()) == {"completed"}
    for node in (a, b):
        _status, health = http("GET", node.base + "/health/detailed", key=key)
        nodes = health["checks"]["nodes"]
        assert nodes["status"] == "pass", health  # each heard the other again


def _health(node: ServerProcess) -> tuple[int, str]:
    status, body = http("GET", node.base + "/health", timeout=10)
    return status, str(body.get("status") if isinstance(body, dict) else body)


async def unhealthy(node: ServerProcess) -> bool:
    return (await asyncio.to_thread(_health, node))[1] != "healthy"


async def healthy(node: ServerProcess) -> bool:
    return await asyncio.to_thread(_health, node) == (200, "healthy")
