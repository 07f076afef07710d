"""Several nodes on one PostgreSQL database, as the real app in-process: one queue, every
node's events on every node's sockets, pause and cancel across nodes, /health."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from conftest import Client, ClientFactory, auth
from support import eventually_async

from toombos_edge.appkeys import BRIDGE, ENGINE
from toombos_edge.jobs.kinds import JobContext, JobKind

pytestmark = pytest.mark.timeout(300)


async def two_nodes(make_client: ClientFactory, tmp_path: Path, url: str,
                    **settings: Any) -> tuple[Client, Client, str]:
    """Nodes A and B on the database at ``url``, each with a data dir of its own; the
    admin key A made (the first node creates it; B finds keys there and makes none)."""
    a = await make_client(tmp_path / "a", database_url=url, node_id="a", **settings)
    b = await make_client(tmp_path / "b", database_url=url, node_id="b", **settings)
    key = (tmp_path / "a" / "data" / "admin.key").read_text().strip()
    assert not (tmp_path / "b" / "data" / "admin.key").exists()
    return a, b, key


async def test_a_job_submitted_to_one_node_is_seen_on_the_others_socket(
    postgres_url: str, make_client: ClientFactory, tmp_path: Path,
) -> None:
    a, b, key = await two_nodes(make_client, tmp_path, postgres_url)
    ws = await b.ws_connect("/ws/jobs", params={"token": key})
    response = await a.post("/api/v2/content/generate", headers=auth(key), json={
        "text": "Two nodes, one queue.", "channels": ["website"]})
    assert response.status in (200, 201, 202), await response.text()
    job_id = (await response.json())["job_id"]
    seen: list[str] = []
    async with asyncio.timeout(30):
        while not seen or seen[-1] not in ("completed", "failed", "partial"):
            message = await ws.receive_json()
            job = message.get("job") or {}
            if job.get("job_id") == job_id:
                seen.append(job["status"])
    assert seen[-1] == "completed", seen
    got = await b.get(f"/api/v2/jobs/{job_id}", headers=auth(key))
    assert (await got.json())["status"] == "completed"
    health = await (await b.get("/health/detailed", headers=auth(key))).json()
    assert health["checks"]["nodes"]["status"] == "pass", health
    assert b.app[BRIDGE].received > 0 and a.app[ENGINE].counters["submitted"] == 1


class Runs:
    """A job kind both nodes run: counts each job's runs, and holds jobs whose params say
    ``hold`` until released (or cancelled)."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.by_node: dict[str, str] = {}
        self.release = asyncio.Event()
        self.started: asyncio.Queue[str] = asyncio.Queue()

    def kind(self, node: str) -> JobKind:
        async def run(ctx: JobContext) -> None:
            self.counts[ctx.job.id] += 1
            self.by_node[ctx.job.id] = node
            if ctx.params.get("hold"):
                self.started.put_nowait(ctx.job.id)
                await self.release.wait()

        return JobKind("count", run, max_attempts=1)


def with_kind(runs: Runs, *nodes: tuple[str, Client]) -> None:
    for name, node in nodes:
        node.app[ENGINE].registry.register(runs.kind(name))


async def submit(node: Client, key: str, **params: Any) -> str:
    response = await node.post("/api/jobs", headers=auth(key),
                               json={"kind": "count", "params": params})
    assert response.status == 202, await response.text()
    return str((await response.json())["job_id"])


async def status_of(node: Client, key: str, job_id: str) -> str:
    response = await node.get(f"/api/v2/jobs/{job_id}", headers=auth(key))
    return str((await response.json())["status"])


async def test_jobs_submitted_to_both_nodes_run_once_each_on_either(
    postgres_url: str, make_client: ClientFactory, tmp_path: Path,
) -> None:
    a, b, key = await two_nodes(make_client, tmp_path, postgres_url)
    runs = Runs()
    with_kind(runs, ("a", a), ("b", b))
    ids = [await submit((a, b)[n % 2], key, n=n) for n in range(200)]

    def all_ran() -> bool:  # the counts are read from the database every second
        return a.app[ENGINE].stats()["counts"].get("completed", 0) == 200

    await eventually_async(all_ran, 60, lambda: f"{len(runs.counts)} of 200 ran")
    assert set(runs.counts) == set(ids) and set(runs.counts.values()) == {1}
    assert set(runs.by_node.values()) == {"a", "b"}  # both nodes took jobs


async def test_pausing_one_node_pauses_the_queue_of_every_node(
    postgres_url: str, make_client: ClientFactory, tmp_path: Path,
) -> None:
    a, b, key = await two_nodes(make_client, tmp_path, postgres_url)
    runs = Runs()
    with_kind(runs, ("a", a), ("b", b))
    assert (await a.post("/admin/queue/pause", headers=auth(key))).status == 200
    await eventually_async(lambda: b.app[ENGINE].paused, 20, "B paused")
    waiting = await submit(b, key)
    one_more = await submit(a, key)
    # Neither node starts them: both have every worker idle and the jobs are due.
    assert not runs.counts
    assert {await status_of(b, key, waiting), await status_of(a, key, one_more)} == {"pending"}
    assert (await b.post("/admin/queue/resume", headers=auth(key))).status == 200

    async def both_ran() -> bool:
        return {await status_of(a, key, j) for j in (waiting, one_more)} == {"completed"}

    await eventually_async(both_ran, 30, "jobs run after the resume on the other node")
    assert not a.app[ENGINE].paused and not b.app[ENGINE].paused


async def test_a_node_that_starts_while_the_queue_is_paused_starts_paused(
    postgres_url: str, make_client: ClientFactory, tmp_path: Path,
) -> None:
    a = await make_client(tmp_path / "a", database_url=postgres_url, node_id="a")
    key = (tmp_path / "a" / "data" / "admin.key").read_text().strip()
    assert (await a.post("/admin/queue/pause", headers=auth(key))).status == 200
    b = await make_client(tmp_path / "b", database_url=postgres_url, node_id="b")
    await eventually_async(lambda: b.app[ENGINE].paused, 20, "B learns the queue is paused")
    assert (await b.post("/admin/queue/resume", headers=auth(key))).status == 200
    await eventually_async(lambda: not a.app[ENGINE].paused, 20, "A resumed by B")


async def test_a_job_running_on_one_node_is_cancelled_through_the_other(
    postgres_url: str, make_client: ClientFactory, tmp_path: Path,
) -> None:
    a, b, key = await two_nodes(make_client, tmp_path, postgres_url)
    runs = Runs()
    with_kind(runs, ("a", a), ("b", b))
    job_id = await submit(a, key, hold=True)
    async with asyncio.timeout(30):
        assert await runs.started.get() == job_id
    owner, other = (a, b) if runs.by_node[job_id] == "a" else (b, a)
    assert owner.app[ENGINE].holds(job_id) and not other.app[ENGINE].holds(job_id)
    response = await other.post(f"/api/v2/jobs/{job_id}/cancel", headers=auth(key))
    assert response.status == 200, await response.text()
    assert (await response.json())["status"] == "cancelled"
    assert await status_of(owner, key, job_id) == "cancelled"
    assert not owner.app[ENGINE].holds(job_id)
    response = await other.post(f"/api/v2/jobs/{job_id}/cancel", headers=auth(key))
    assert response.status == 409  # ended: nothing to cancel


async def test_a_batch_cancel_reaches_jobs_running_on_the_other_node(
    postgres_url: str, make_client: ClientFactory, tmp_path: Path,
) -> None:
    a, b, key = await two_nodes(make_client, tmp_path, postgres_url)
    runs = Runs()
    with_kind(runs, ("a", a), ("b", b))
    ids = [await submit((a, b)[n % 2], key, hold=True) for n in range(4)]
    async with asyncio.timeout(30):
        started = {await runs.started.get() for _ in ids}
    assert started == set(ids) and set(runs.by_node.values()) == {"a", "b"}
    response = await a.post("/api/jobs/batch/cancel", headers=auth(key), json={"job_ids": ids})
    assert response.status == 200, await response.text()
    tally = await response.json()
    assert tally["touched"] == 4, tally
    assert {await status_of(a, key, job_id) for job_id in ids} == {"cancelled"}


async def test_a_node_that_stops_hearing_the_others_says_so_and_catches_up(
    postgres_url: str, make_client: ClientFactory, tmp_path: Path,
) -> None:
    """B's listening connection killed while the database takes no new connection: B's
    /health warns (degraded) until it listens again; a job A ran meanwhile reaches B's
    sockets all the same (caught up)."""
    a, b, key = await two_nodes(make_client, tmp_path, postgres_url)
    runs = Runs()
    with_kind(runs, ("a", a), ("b", b))
    b.app[ENGINE].pause(announce=False)  # so that A runs the job, and B only hears of it
    ws = await b.ws_connect("/ws/jobs", params={"token": key})
    name = postgres_url.split("/")[3].split("?", maxsplit=1)[0]
    admin = await asyncpg.connect(postgres_url.replace(f"/{name}?", "/postgres?"))
    try:
        await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        pid = b.app[BRIDGE].stats()["backend_pid"]
        assert await admin.fetchval("SELECT pg_terminate_backend($1)", pid)

        async def nodes_check() -> str:
            body = await (await b.get("/health/detailed", headers=auth(key))).json()
            return str(body["checks"]["nodes"]["status"])

        async def deaf() -> bool:
            return await nodes_check() == "warn"

        await eventually_async(deaf, 20, "B says it does not hear the others")
        job_id = await submit(a, key)
        await eventually_async(lambda: job_id in runs.counts, 20, "A ran the job")
        assert runs.by_node[job_id] == "a"
        await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
    finally:
        await admin.close()
    await eventually_async(lambda: b.app[BRIDGE].state.healthy, 30, "B listens again")
    async with asyncio.timeout(30):
        while True:
            job = (await ws.receive_json()).get("job") or {}
            if job.get("job_id") == job_id and job.get("status") == "completed":
                break

    async def hears() -> bool:  # /health's checks are reused for a second
        return await nodes_check() == "pass"

    await eventually_async(hears, 20, "/health says B hears the others again")
