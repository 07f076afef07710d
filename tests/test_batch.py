"""Batches: checked together; ordered batches run in order; fail-fast stops the rest.

Order is a stored dependency (``depends_on``): the engine claims a job only once the one it
waits for has ended, so no worker waits and nothing lives in memory. Tested on the real
engine over a real store on each backend (``[sqlite]``/``[postgres]``, tests/job_backends.py),
and through the HTTP API with a real SMTP sink that the test holds open (so a job stays
running exactly as long as the test wants).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from conftest import Client, ClientFactory, auth, finished, settings_for

from toombos_edge.app import create_app
from toombos_edge.content.batch import plan
from toombos_edge.errors import Invalid
from toombos_edge.events import Event, EventBus
from toombos_edge.jobs.engine import JobEngine
from toombos_edge.jobs.kinds import JobContext, JobKind, KindRegistry, Outcome, PermanentFailure
from toombos_edge.records.job import Job, JobStatus
from toombos_edge.settings import Settings
from toombos_edge.store.jobs import JobStore

pytestmark = pytest.mark.backends

GOOD = {"text": "Hello there.", "channels": ["email"]}


def test_a_batch_is_checked_as_a_whole() -> None:
    checked = plan({"requests": [GOOD, {"channels": ["fax"]}, GOOD], "parallel": False})
    assert len(checked.requests) == 2 and checked.errors[0]["index"] == 1
    assert [r.batch["index"] for r in checked.requests if r.batch] == [0, 1]
    with pytest.raises(Invalid) as refused:
        plan({"requests": [GOOD, {"channels": ["fax"]}], "fail_fast": True})
    assert refused.value.details["errors"][0]["index"] == 1
    for bad in ({}, {"requests": []}, {"requests": [GOOD] * 101},
                {"requests": [GOOD], "parallel": "no"}, {"requests": ["x"]}):
        with pytest.raises(Invalid):
            plan(bad)



# --- the engine: jobs that depend on jobs -------------------------------------------------


class Held:
    """Handlers that record their order and run until the test lets each one go."""

    def __init__(self) -> None:
        self.order: list[str] = []
        self.entered = asyncio.Condition()
        self.release: dict[str, asyncio.Event] = {}

    def gate(self, name: str) -> asyncio.Event:
        return self.release.setdefault(name, asyncio.Event())

    async def run(self, ctx: JobContext) -> Outcome:
        name = ctx.params["name"]
        async with self.entered:
            self.order.append(name)
            self.entered.notify_all()
        await self.gate(name).wait()
        if ctx.params.get("fail"):
            raise PermanentFailure(f"{name} broke")
        return Outcome({"held": {"status": "success"}})

    async def until_entered(self, name: str) -> None:
        async with asyncio.timeout(10), self.entered:
            await self.entered.wait_for(lambda: name in self.order)


class Events(list[Event]):
    """The engine's events, and a wait for a job's end (from its event: no polling)."""

    def __init__(self) -> None:
        super().__init__()
        self._ends: dict[str, asyncio.Future[str]] = {}

    def seen(self, event: Event) -> None:
        self.append(event)
        job = event.body.get("job")
        if job and job["status"] in TERMINAL_STATUSES:
            end = self._end(job["job_id"])
            if not end.done():
                end.set_result(job["status"])

    def _end(self, job_id: str) -> asyncio.Future[str]:
        if job_id not in self._ends:
            self._ends[job_id] = asyncio.get_running_loop().create_future()
        return self._ends[job_id]

    async def ended(self, job_id: str) -> str:
        async with asyncio.timeout(10):
            return await self._end(job_id)


TERMINAL_STATUSES = {"completed", "partial", "failed", "cancelled"}


@pytest.fixture
async def held_engine(job_store: JobStore) -> AsyncIterator[tuple[JobEngine, Held, Events]]:
    held, events = Held(), Events()
    kinds = KindRegistry()
    kinds.register(JobKind("held", held.run, max_attempts=1))
    bus = EventBus()
    bus.subscribe(events.seen)
    engine = JobEngine(job_store, bus, kinds, workers=2)
    await engine.start()
    yield engine, held, events
    for gate in held.release.values():
        gate.set()
    await engine.stop(1.0)


async def chain(engine: JobEngine, names: list[str], *, fail_fast: bool,
                fail: str = "") -> list[Job]:
    jobs: list[Job] = []
    for name in names:
        after = jobs[-1].id if jobs else None
        jobs.append(await engine.submit("held", {"name": name, "fail": name == fail},
                                        depends_on=after, fail_fast=fail_fast))
    return jobs


async def test_a_chain_runs_in_order_and_waiting_jobs_hold_no_worker(
    held_engine: tuple[JobEngine, Held, Events],
) -> None:
    engine, held, events = held_engine
    first, second, third = await chain(engine, ["a", "b", "c"], fail_fast=False)
    await held.until_entered("a")
    # Two workers, one busy with "a": the other is free, so a job outside the chain runs
    # at once while "b" and "c" wait (stored pending, never started).
    loose = await engine.submit("held", {"name": "loose"})
    held.gate("loose").set()
    assert await events.ended(loose.id) == "completed"
    for waiting in (second, third):
        job = await engine.get(waiting.id)
        assert (job.status, job.attempts, job.started_at) == (JobStatus.pending, 0, None)
    assert (await engine.get(second.id)).to_json()["depends_on"] == first.id
    for name in ("a", "b", "c"):
        held.gate(name).set()
    await engine.join()
    done = [await engine.get(job.id) for job in (first, second, third)]
    assert [job.status for job in done] == [JobStatus.completed] * 3
    assert held.order == ["a", "loose", "b", "c"]
    assert all(done[n].completed_at <= done[n + 1].started_at  # type: ignore[operator]
               for n in range(2))


async def test_fail_fast_cancels_the_rest_with_the_reason(
    held_engine: tuple[JobEngine, Held, Events], job_store: JobStore
) -> None:
    engine, held, events = held_engine
    jobs = await chain(engine, ["a", "b", "c", "d"], fail_fast=True, fail="b")
    for name in ("a", "b"):
        held.gate(name).set()
    await engine.join()
    ended = [await engine.get(job.id) for job in jobs]
    assert [job.status for job in ended] == [JobStatus.completed, JobStatus.failed,
                                             JobStatus.cancelled, JobStatus.cancelled]
    assert held.order == ["a", "b"]  # c and d never ran
    assert ended[2].last_error == f"skipped: job {jobs[1].id}, which this one waits for, was failed"
    assert ended[3].last_error is not None and jobs[2].id in ended[3].last_error
    cancelled = {e.body["job"]["job_id"] for e in events if e.type == "job_cancelled"}
    assert cancelled == {jobs[2].id, jobs[3].id}  # announced like any cancel
    counts = await job_store.counts()  # kept by the statements that cancelled them
    assert (counts["cancelled"], counts["pending"], counts["failed"]) == (2, 0, 1)


async def test_without_fail_fast_the_chain_goes_on_after_a_failure(
    held_engine: tuple[JobEngine, Held, Events],
) -> None:
    engine, held, _events = held_engine
    jobs = await chain(engine, ["a", "b", "c"], fail_fast=False, fail="a")
    for name in ("a", "b", "c"):
        held.gate(name).set()
    await engine.join()
    statuses = [(await engine.get(job.id)).status for job in jobs]
    assert statuses == [JobStatus.failed, JobStatus.completed, JobStatus.completed]
    assert held.order == ["a", "b", "c"]


async def test_cancelling_a_waiting_job_cancels_its_fail_fast_followers(
    held_engine: tuple[JobEngine, Held, Events],
) -> None:
    engine, held, events = held_engine
    jobs = await chain(engine, ["a", "b", "c"], fail_fast=True)
    await held.until_entered("a")
    cancelled = await engine.cancel(jobs[1].id)  # waiting for "a": cancelled at once
    assert cancelled.status is JobStatus.cancelled
    assert await events.ended(jobs[2].id) == "cancelled"
    held.gate("a").set()
    await engine.join()
    assert (await engine.get(jobs[0].id)).status is JobStatus.completed
    assert held.order == ["a"]


async def test_a_job_whose_dependency_already_ended_runs_at_once(
    held_engine: tuple[JobEngine, Held, Events],
) -> None:
    engine, held, _events = held_engine
    held.gate("a").set()
    held.gate("b").set()
    first = await engine.submit("held", {"name": "a"})
    await engine.join()
    second = await engine.submit("held", {"name": "b"}, depends_on=first.id, fail_fast=True)
    await engine.join()
    assert (await engine.get(second.id)).status is JobStatus.completed
    gone = await engine.submit("held", {"name": "b"}, depends_on="job_not_there")
    await engine.join()
    assert (await engine.get(gone.id)).status is JobStatus.completed  # nothing to wait for


async def test_a_retried_job_waits_again_for_a_dependency_that_has_not_ended(
    held_engine: tuple[JobEngine, Held, Events],
) -> None:
    engine, held, events = held_engine
    first, second = await chain(engine, ["a", "b"], fail_fast=True)
    await held.until_entered("a")
    await engine.cancel(second.id)
    again = await engine.retry(second.id)  # "a" still runs: "b" waits for it once more
    assert again.status is JobStatus.pending and again.depends_on == first.id
    loose = await engine.submit("held", {"name": "loose"})
    held.gate("loose").set()
    assert await events.ended(loose.id) == "completed"  # the free worker did not take "b"
    assert (await engine.get(second.id)).attempts == 0 and held.order == ["a", "loose"]
    held.gate("a").set()
    held.gate("b").set()
    await engine.join()
    assert (await engine.get(second.id)).status is JobStatus.completed
    assert held.order == ["a", "loose", "b"]


# --- through the API -----------------------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgres"])
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    """The app on its SQLite file, or on a PostgreSQL database of its own."""
    if request.param == "postgres":
        return settings_for(tmp_path, database_url=request.getfixturevalue("postgres_url"))
    return settings_for(tmp_path)


@pytest.fixture
async def client(settings: Settings, aiohttp_client: ClientFactory) -> Client:
    """conftest's, with ``settings`` first: its database outlives the app (torn down last)."""
    return await aiohttp_client(create_app(settings))


async def test_a_fail_fast_batch_over_http_cancels_what_follows_a_failure(
    client: Client, admin_key: str
) -> None:
    """The middle item's document is deleted before it runs (no retry mends that): it fails,
    the last is cancelled with the reason, the first completed; each job names the one it
    waited for (the typed reply declares ``depends_on``)."""
    admin = auth(admin_key)
    created = await client.post("/api/documents", headers=admin, json={
        "title": "Field guide", "text": "Teams sync offline.", "format": "markdown"})
    document = (await created.json())["id"]
    assert (await client.post("/admin/queue/pause", headers=admin)).status == 200
    inline = {"title": "Sequence", "text": "Teams sync offline.", "channels": ["twitter"]}
    response = await client.post("/api/v2/batch/generate", headers=admin, json={
        "requests": [inline, {"living_doc_id": document, "channel": "twitter"}, inline],
        "parallel": False, "fail_fast": True})
    assert response.status == 202
    jobs = (await response.json())["jobs"]
    assert [job["depends_on"] for job in jobs] == [None, jobs[0]["job_id"], jobs[1]["job_id"]]
    assert (await client.delete(f"/api/documents/{document}", headers=admin)).status == 200
    assert (await client.post("/admin/queue/resume", headers=admin)).status == 200
    ended = [await finished(client, job["job_id"]) for job in jobs]
    assert [job["status"] for job in ended] == ["completed", "failed", "cancelled"]
    assert ended[2]["attempts"] == 0 and jobs[1]["job_id"] in ended[2]["last_error"]
    listed = await client.get(f"/api/jobs/{jobs[2]['job_id']}", headers=admin)
    assert (await listed.json())["depends_on"] == jobs[1]["job_id"]
