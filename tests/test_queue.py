"""The in-memory ready queue: order, removal, and a job that comes back."""

from __future__ import annotations

import asyncio

from toombos_edge.jobs.queue import ReadyQueue
from toombos_edge.records.job import Job, JobStatus


def claimed(job_id: str, priority: int = 0, created: int = 1) -> Job:
    return Job(job_id, "noop", JobStatus.in_progress, created, created, priority=priority)


async def test_takes_in_queue_order() -> None:
    queue = ReadyQueue()
    queue.push([claimed("job_a", 0, 1), claimed("job_b", 9, 2), claimed("job_c", 0, 0)])
    taken = [await queue.take() for _ in range(3)]
    assert [job.id for job in taken if job] == ["job_b", "job_c", "job_a"]


async def test_skips_a_removed_entry_when_the_job_comes_back() -> None:
    queue = ReadyQueue()
    old = claimed("job_1", priority=5)
    queue.push([old])
    assert queue.remove("job_1") is old
    fresh = claimed("job_1", created=2)
    queue.push([fresh])
    assert await queue.take() is fresh
    queue.close()
    assert await queue.take() is None


async def test_a_reserved_worker_runs_only_the_job_given_to_it() -> None:
    queue = ReadyQueue()
    first, second = asyncio.create_task(queue.take()), asyncio.create_task(queue.take())
    await asyncio.sleep(0)  # both workers wait (one loop turn: no time passes)
    reserved = queue.reserve()
    assert reserved is not None
    other = claimed("job_other", priority=9)
    queue.push([other])  # goes to the worker that is not reserved
    mine = claimed("job_mine")
    queue.give(reserved, mine)
    taken = [await first, await second]
    assert sorted(job.id for job in taken if job) == ["job_mine", "job_other"]
    assert taken[0] is mine  # the longest waiting worker was the one reserved
    assert queue.reserve() is None  # nobody waits any more


async def test_a_reserved_worker_given_nothing_goes_back_to_the_queue() -> None:
    queue = ReadyQueue()
    worker = asyncio.create_task(queue.take())
    await asyncio.sleep(0)
    reserved = queue.reserve()
    assert reserved is not None
    queue.give(reserved, None)
    job = claimed("job_later")
    queue.push([job])
    assert await worker is job
