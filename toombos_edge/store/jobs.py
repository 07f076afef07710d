"""The jobs aggregate's storage: what the engine and the job queries need, nothing more.

A backend keeps each job as one record (:class:`~toombos_edge.records.job.Job`) by its
string id, with times as integer milliseconds. Besides the jobs themselves it keeps two
tallies the readers rely on, updated in the same transaction as the change they count: jobs
per (kind, status) (:meth:`JobStore.counts`, the list's exact totals) and jobs made and
ended per hour of creation and channel (what analytics reads; see :data:`HOUR_MS`).

Terms the methods share. *Pending* jobs wait to run; one is *due* when its due time (its
``scheduled_for``, or a retry's backoff) has come. A pending job with ``depends_on`` is
*blocked* until that job has ended; the transaction that ends a job decides for its blocked
dependents (:class:`Settled`). *Running* is ``in_progress`` under a *lease* (a time) that
its engine renews; a lease that ran out means that engine died. Several engines (nodes) may
share one store: nothing here may rely on a single writer's ordering.

Also the values that reading many jobs speaks: :class:`JobFilter`, :class:`Fieldset`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from ..records.job import Job, JobStatus

HOUR_MS = 3_600_000  #: jobs are tallied per hour of their creation (UTC)
CREATED = ""  #: the tally's status key of the jobs created in an hour
ENDED = ("completed", "partial", "failed", "cancelled")  #: the end statuses tallied per hour
RETRYABLE = ("failed", "cancelled", "partial")  #: the statuses a retry starts again


@dataclass(frozen=True, slots=True)
class Settled:
    """What the end of jobs decided for the jobs that depend on them."""

    released: int  #: dependents that may run now (or when they are due)
    cancelled: list[Job]  #: fail-fast dependents cancelled, and theirs in turn


@dataclass(frozen=True, slots=True)
class JobFilter:
    """What a list, an export or a batch operation selects. Empty means everything."""

    statuses: tuple[str, ...] = ()
    kind: str | None = None
    q: str | None = None  #: prefix of the job id, document id or correlation id
    since: int | None = None  #: created at or after (ms)
    until: int | None = None  #: created at or before (ms)

    @property
    def counted(self) -> bool:
        """Only statuses and kind: the per-status tallies answer ``total`` exactly."""
        return self.q is None and self.since is None and self.until is None


COUNT_CAP = 10_000  #: a total that the tallies cannot answer is counted up to this


# Every top-level key of Job.to_json, in its order.
JOB_FIELDS = (
    "job_id", "kind", "status", "priority", "document_id", "channels", "progress", "attempts",
    "max_attempts", "last_error", "errors", "results", "output", "params", "metadata",
    "correlation_id", "idempotency_key", "created_at", "updated_at", "scheduled_for",
    "started_at", "completed_at", "depends_on",
)


class UnknownFields(ValueError):
    """Names that are not keys of the job object (``names`` lists them, in asked order)."""

    def __init__(self, names: list[str]) -> None:
        super().__init__(", ".join(names))
        self.names = names


@dataclass(frozen=True, slots=True)
class Fieldset:
    """Sparse job objects (``?fields=job_id,status,…``): the asked keys, in the job object's
    order, ``job_id`` always first. A backend reads only what they need and renders each
    job straight to a dict whose values are exactly those of :meth:`Job.to_json`. Made by
    :func:`fieldset` or :func:`whole`, which keep those rules."""

    fields: tuple[str, ...]


def whole() -> Fieldset:
    """Every key: the whole job object."""
    return Fieldset(JOB_FIELDS)


def fieldset(names: Iterable[str]) -> Fieldset:
    """The fieldset of ``names``; raises :class:`UnknownFields` naming the unknown ones."""
    asked = dict.fromkeys(name for name in names if name)
    unknown = [name for name in asked if name not in JOB_FIELDS]
    if unknown:
        raise UnknownFields(unknown)
    return Fieldset(tuple(name for name in JOB_FIELDS if name in asked or name == "job_id"))


@dataclass(frozen=True, slots=True)
class Page:
    """Matching jobs newest first, and how many match (capped at :data:`COUNT_CAP` when
    not ``total_exact``)."""

    jobs: list[Job]
    total: int
    total_exact: bool
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class FieldsPage:
    """A page of job objects cut down to a fieldset."""

    jobs: list[dict[str, Any]]
    total: int
    total_exact: bool
    next_cursor: str | None


def queue_order(job: Job) -> tuple[int, int, int, str]:
    """The order workers take jobs in: urgent, priority, due time, creation."""
    return (-job.urgent, -job.priority, job.scheduled_for or job.created_at, job.id)


class JobStore(Protocol):
    """The jobs, their tallies and dependencies. Each method is one transaction (reads: one
    consistent snapshot); none returns before its change is durable as the backend's
    settings make it."""

    # -- the engine's lock --------------------------------------------------------------

    async def lock_engine(self) -> bool:
        """Try to be the only engine on this store for the life of the process: True when
        no other engine holds the lock, so that every lease found may be treated as
        expired. False: another engine runs; only leases that ran out are recovered.

        Where several engines share the store by design (PostgreSQL), True holds until
        this engine's first :meth:`recover`: an engine starting meanwhile waits here for
        it, then gets False; and True again only once every other engine has unlocked."""

    async def unlock_engine(self) -> None:
        """Give the lock of :meth:`lock_engine` back (nothing if it was not held)."""

    # -- new jobs -----------------------------------------------------------------------

    async def insert(self, jobs: Sequence[tuple[Job, int]]) -> Settled | None:
        """Store new jobs, each with the time it becomes due, all in one transaction.

        A job may arrive already started (``in_progress`` with a lease): the engine hands a
        fresh job straight to an idle worker. A job whose dependency has ended already (or
        is not stored) is settled in the same transaction; the answer says what was.
        """

    async def insert_once(self, job: Job, due_at: int) -> Job:
        """Store ``job`` unless a job with its idempotency key is stored; returns the
        stored one. Two engines inserting the same key at once store one job."""

    # -- reading ------------------------------------------------------------------------

    async def get(self, job_id: str) -> Job | None:
        """The job as last committed, or None."""

    async def statuses(self, ids: Sequence[str]) -> dict[str, JobStatus]:
        """The status of each of ``ids`` that is stored (unknown ids are left out)."""

    async def counts(self) -> dict[str, int]:
        """Jobs per status, every status present (from the tallies: no scan of the jobs)."""

    # -- the engine's moves -------------------------------------------------------------

    async def claim(
        self, now: int, limit: int, lease_until: int, *, urgent_only: bool
    ) -> tuple[list[Job], int | None]:
        """Start up to ``limit`` due pending jobs (not blocked) in queue order (urgent,
        priority, due time, id): ``in_progress``, attempt counted, ``started_at``, under
        ``lease_until``. Two engines claiming at once never start the same job. Returns
        the jobs in queue order and, when fewer than ``limit`` were due, when the earliest
        pending job scheduled later becomes due (None: none is).

        A due job that another transaction holds at that moment may be passed over (on
        PostgreSQL: another claim, or the insert of a job that depends on it, or a
        retry's): the caller claims again once its own such writes have committed."""

    async def claim_one(self, job_id: str, now: int, lease_until: int) -> Job | None:
        """Start one pending job by id (an urgent job skips the queue); None when it is
        not pending any more."""

    async def save(self, jobs: Sequence[tuple[Job, int]]) -> Settled | None:
        """Store what workers decided for jobs they held (an outcome, or a retry with the
        time it becomes due), the lease cleared, in one transaction with what the ends
        decide for their dependents. A job no longer held (another engine recovered it
        after its lease ran out) is left as it is."""

    async def save_progress(self, jobs: Sequence[Job]) -> list[bool]:
        """Store the progress of running jobs; False for each one no longer running."""

    async def renew_leases(self, ids: Sequence[str], lease_until: int) -> None:
        """Move the lease of each of ``ids`` still running to ``lease_until``."""

    async def release(self, ids: Sequence[str], now: int) -> list[Job]:
        """Give started jobs back to the queue, due now, their attempt not counted (pause,
        stop). Returns those still running when it ran."""

    async def recover(self, now: int, *, every_lease: bool) -> tuple[list[Job], Settled | None]:
        """Jobs whose lease ran out (``every_lease``: every running job) go back to
        pending with the interruption recorded and their attempt counted, or end
        ``failed`` when it was their last; with what those ends decide for dependents."""

    async def cancel_pending(
        self, ids: Sequence[str], now: int
    ) -> tuple[list[Job], Settled | None]:
        """Cancel those of ``ids`` that are pending (a running job is cancelled by its
        engine, which stops it first), and settle their dependents."""

    async def requeue(self, ids: Sequence[str], now: int) -> list[Job]:
        """Start again those of ``ids`` in a :data:`RETRYABLE` status: pending, due now,
        attempts and times reset; blocked again if their dependency has not ended."""

    # -- reading many -------------------------------------------------------------------

    async def page(
        self, flt: JobFilter, limit: int, *, offset: int = 0, before: str | None = None
    ) -> Page:
        """Matching jobs newest first (by id: ids sort by creation) older than the cursor
        ``before``, with the total, from one snapshot."""

    async def fields_page(
        self, flt: JobFilter, fields: Fieldset, limit: int, *, offset: int = 0,
        before: str | None = None, total: bool = True,
    ) -> FieldsPage:
        """Like :meth:`page`, each job as its object with only the fieldset's keys
        (``total``: False skips the count, answered as 0)."""

    async def ids(self, flt: JobFilter, before: str | None, limit: int) -> list[str]:
        """Ids of the next ``limit`` matching jobs older than ``before``, newest first."""
