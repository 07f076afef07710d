"""What happens to a job held by a worker when its attempt ends: the state changes in memory.

The engine stores the changed job afterwards (``store.save``); these functions only decide.
"""

from __future__ import annotations

from typing import Any

from ..ids import iso
from . import results
from .kinds import Outcome
from .model import Job, JobStatus


def start(job: Job, now: int) -> None:
    """A worker starts a claimed job: this attempt counts from now."""
    job.status = JobStatus.in_progress
    job.attempts += 1
    job.started_at = job.updated_at = now
    job.progress_percent, job.progress_message = 0.0, ""


def succeed(job: Job, outcome: Outcome | None, now: int) -> None:
    """The handler returned: completed, or partial when it says some parts failed."""
    if outcome is not None:
        _keep(job, outcome, now)
    partial = outcome is not None and outcome.partial
    job.status = JobStatus.partial if partial else JobStatus.completed
    if not partial:
        job.progress_percent = 100.0
    _end(job, now)


def fail(
    job: Job, error: str, now: int, retry_at: int | None, outcome: Outcome | None = None
) -> None:
    """The attempt failed: pending again at ``retry_at``, or over (None): failed, or partial
    when the handler's ``outcome`` says some parts succeeded."""
    job.errors = [*job.errors, error_entry(job.attempts, error, now)]
    job.last_error = error
    job.updated_at = now
    job.lease_until = None
    if retry_at is None:
        if outcome is not None:
            _keep(job, outcome, now)
        job.status = JobStatus.partial if outcome and outcome.partial else JobStatus.failed
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


def _keep(job: Job, outcome: Outcome, now: int) -> None:
    """Store what the handler produced, ``results`` channel-shaped whatever the kind."""
    job.results, loose = results.split(outcome.results, iso(now) or "")
    job.output = {**loose, **outcome.output}
    if outcome.document_id is not None:
        job.document_id = outcome.document_id


def _end(job: Job, now: int) -> None:
    job.updated_at = now
    job.completed_at = now
    job.lease_until = None
