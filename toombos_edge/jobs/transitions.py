"""What happens to a job held by a worker when its attempt starts and ends.

Each function returns the new record (jobs are frozen); the engine stores it afterwards
(``store.save``). These functions only decide.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from ..ids import iso
from ..records.job import Job, JobStatus
from . import results
from .kinds import Outcome


def start(job: Job, now: int, lease_until: int) -> Job:
    """A worker starts a claimed job under a lease: this attempt counts from now."""
    return replace(
        job, status=JobStatus.in_progress, attempts=job.attempts + 1, started_at=now,
        updated_at=now, progress_percent=0.0, progress_message="", lease_until=lease_until,
    )


def succeed(job: Job, outcome: Outcome | None, now: int) -> Job:
    """The handler returned: completed, or partial when it says some parts failed."""
    partial = outcome is not None and outcome.partial
    return replace(
        job, **_kept(job, outcome, now),
        status=JobStatus.partial if partial else JobStatus.completed,
        progress_percent=job.progress_percent if partial else 100.0,
        updated_at=now, completed_at=now, lease_until=None,
    )


def fail(
    job: Job, error: str, now: int, retry_at: int | None, outcome: Outcome | None = None
) -> Job:
    """The attempt failed: pending again at ``retry_at``, or over (None): failed, or partial
    when the handler's ``outcome`` says some parts succeeded."""
    errors = [*job.errors, error_entry(job.attempts, error, now)]
    if retry_at is not None:
        return replace(job, status=JobStatus.pending, scheduled_for=retry_at, errors=errors,
                       last_error=error, updated_at=now, lease_until=None)
    partial = outcome is not None and outcome.partial
    return replace(
        job, **_kept(job, outcome, now),
        status=JobStatus.partial if partial else JobStatus.failed, errors=errors,
        last_error=error, updated_at=now, completed_at=now, lease_until=None,
    )


def cancel(job: Job, now: int) -> Job:
    return replace(job, status=JobStatus.cancelled, updated_at=now, completed_at=now,
                   lease_until=None)


def unstart(job: Job) -> Job:
    """A job given to a worker that never took it: its attempt is not counted."""
    return replace(job, attempts=max(job.attempts - 1, 0), started_at=None)


def error_entry(attempt: int, error: str, now: int) -> dict[str, Any]:
    """One entry of ``errors``: which attempt, what went wrong, when."""
    return {"attempt": attempt, "error": error, "at": iso(now)}


def _kept(job: Job, outcome: Outcome | None, now: int) -> dict[str, Any]:
    """What the handler produced, as fields of the job, ``results`` channel-shaped whatever
    the kind (nothing when it returned no outcome)."""
    if outcome is None:
        return {}
    channels, loose = results.split(outcome.results, iso(now) or "")
    kept: dict[str, Any] = {"results": channels, "output": {**loose, **outcome.output}}
    if outcome.document_id is not None:
        kept["document_id"] = outcome.document_id
    return kept
