"""What happens to a job held by a worker when its attempt ends: the state changes in memory.

The engine stores the changed job afterwards (``store.save``); these functions only decide.
"""

from __future__ import annotations

from typing import Any

from ..ids import iso
from .kinds import Outcome
from .model import Job, JobStatus


def succeed(job: Job, outcome: Outcome | None, now: int) -> None:
    """The handler returned: completed, or partial when it says some parts failed."""
    if outcome is not None:
        job.results = dict(outcome.results)
        if outcome.document_id is not None:
            job.document_id = outcome.document_id
    partial = outcome is not None and outcome.partial
    job.status = JobStatus.partial if partial else JobStatus.completed
    if not partial:
        job.progress_percent = 100.0
    _end(job, now)


def fail(job: Job, error: str, now: int, retry_at: int | None) -> None:
    """The attempt failed: pending again at ``retry_at``, or failed for good (None)."""
    job.errors = [*job.errors, error_entry(job.attempts, error, now)]
    job.last_error = error
    job.updated_at = now
    job.lease_until = None
    if retry_at is None:
        job.status = JobStatus.failed
        job.completed_at = now
        return
    job.status = JobStatus.pending
    job.scheduled_for = retry_at


def cancel(job: Job, now: int) -> None:
    job.status = JobStatus.cancelled
    _end(job, now)


def error_entry(attempt: int, error: str, now: int) -> dict[str, Any]:
    """One entry of ``errors``: which attempt, what went wrong, when."""
    return {"attempt": attempt, "error": error, "at": iso(now)}


def _end(job: Job, now: int) -> None:
    job.updated_at = now
    job.completed_at = now
    job.lease_until = None
