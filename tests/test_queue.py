"""The in-memory ready queue: order, removal, and a job that comes back."""

from __future__ import annotations

from toombos_edge.jobs.model import Job, JobStatus
from toombos_edge.jobs.queue import ReadyQueue


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
