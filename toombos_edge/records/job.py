"""The job record, its states, and its JSON shape (the client contract's job object).

A :class:`Job` is a value: frozen, so a change is a new record (``dataclasses.replace``
or a function of :mod:`.transitions`). Whoever holds one (an event rendered later, a page
being sent, a handler's context) sees it as it was when it was made.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from ..ids import iso
from ..logs import Actor


class JobStatus(StrEnum):
    pending = "pending"  #: waiting for a worker (no lease: nothing holds it)
    in_progress = "in_progress"  #: a worker runs it (started, attempt counted) under a lease
    completed = "completed"  #: every part succeeded
    partial = "partial"  #: some channels (parts) failed, others succeeded
    failed = "failed"  #: the last attempt failed; stays here until retried
    cancelled = "cancelled"  #: cancelled by a client before it finished

    @property
    def terminal(self) -> bool:
        return self in TERMINAL


TERMINAL = frozenset({JobStatus.completed, JobStatus.partial, JobStatus.failed,
                      JobStatus.cancelled})


@dataclass(frozen=True, slots=True)
class Job:
    """One job as stored; times are integer milliseconds since the epoch (UTC)."""

    id: str
    kind: str
    status: JobStatus
    created_at: int
    updated_at: int
    priority: int = 0
    params: dict[str, Any] = field(default_factory=dict)
    document_id: str | None = None
    channels: list[str] = field(default_factory=list)
    progress_percent: float = 0.0
    progress_message: str = ""
    attempts: int = 0
    max_attempts: int = 3
    last_error: str | None = None
    errors: list[dict[str, Any]] = field(default_factory=list)
    results: dict[str, Any] = field(default_factory=dict)  #: channel → {status, …} only
    output: dict[str, Any] = field(default_factory=dict)  #: what the kind produced, its own way
    idempotency_key: str | None = None
    correlation_id: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    scheduled_for: int | None = None
    started_at: int | None = None
    completed_at: int | None = None
    lease_until: int | None = None
    urgent: bool = False  #: ahead of every other job; runs even when the queue is paused
    #: The job this one waits for: it is not claimed before that one has ended.
    depends_on: str | None = None
    #: With ``depends_on``: cancelled, not run, when that job ends failed or cancelled.
    fail_fast: bool = False
    #: Who submitted it, while this process holds the object (for the activity log); not
    #: stored, and None on a job read back from the database.
    actor: Actor | None = field(default=None, compare=False, repr=False)

    def to_json(self) -> dict[str, Any]:
        """The client contract's job object (plus ``kind``, ``progress``, ``attempts``,
        ``output`` and ``depends_on``). ``document_id`` is a string always (empty until a
        job has one): the dashboard lower-cases it."""
        return {
            "job_id": self.id,
            "kind": self.kind,
            "status": self.status.value,
            "priority": self.priority,
            "document_id": self.document_id or "",
            "channels": self.channels,
            "progress": {"percent": self.progress_percent, "message": self.progress_message},
            "attempts": self.attempts,
            "max_attempts": self.max_attempts,
            "last_error": self.last_error,
            "errors": self.errors,
            "results": self.results,
            "output": self.output,
            "params": self.params,
            "metadata": self.metadata,
            "correlation_id": self.correlation_id,
            "idempotency_key": self.idempotency_key,
            "created_at": iso(self.created_at),
            "updated_at": iso(self.updated_at),
            "scheduled_for": iso(self.scheduled_for),
            "started_at": iso(self.started_at),
            "completed_at": iso(self.completed_at),
            "depends_on": self.depends_on,
        }

