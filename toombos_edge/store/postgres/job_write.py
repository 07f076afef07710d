"""One write transaction of the PostgreSQL job store, and the tallies it keeps.

A write changes jobs and, in the same transaction, the two tallies of
:mod:`toombos_edge.store.jobs`: ``job_counts`` (jobs per kind and status) and ``job_hours``
(jobs made and ended per hour of creation and channel). With several nodes writing at once:

* rows of both are per ``slot``, and a write's slot is its connection's server process id
  (modulo the smallint range): two transactions running at once are on two connections, so
  they add to different rows and never wait for each other there (every new job adds to
  its hour's ``''`` row: one row for all would make every write wait for the commit of the
  one before it). Reads sum the slots.

A write gathers its deltas of both and :meth:`Write.flush` writes them as the transaction's
last step, one statement per table, rows in key order: two writes whose slots collide
modulo 32768 lock the rows they share in the same order, once each, and cannot deadlock.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ...records.job import Job
from ..jobs import CREATED, ENDED, HOUR_MS
from .jobs_sql import add_counts

if TYPE_CHECKING:
    from .migrate import Connection

RAN = frozenset({"completed", "partial", "failed"})  #: the statuses whose run time counts
_ENDED = frozenset(ENDED)
_SLOTS = 32768  #: job_counts.slot is a smallint

#: (the job as it is now, its status before (None: a new job), its run time before)
Change = tuple[Job, str | None, int | None]

_HOURS = (
    "INSERT INTO job_hours (channel, status, hour, slot, n, run_ms, runs) "
    "SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::smallint[], "
    "$5::bigint[], $6::bigint[], $7::bigint[]) "
    "ON CONFLICT (channel, status, hour, slot) DO UPDATE SET "
    "n = job_hours.n + excluded.n, run_ms = job_hours.run_ms + excluded.run_ms, "
    "runs = job_hours.runs + excluded.runs"
)


def run_ms(status: str, started_at: int | None, completed_at: int | None) -> int | None:
    """How long a job that ran to an end took (None: it has not, or never started)."""
    if status in RAN and started_at is not None and completed_at is not None:
        return completed_at - started_at
    return None


def moved(jobs: Iterable[Job], before: str) -> list[Change]:
    """Changes of jobs that were all in ``before``, a status that is not an end."""
    return [(job, before, None) for job in jobs]


@dataclass(slots=True)
class Write:
    """The connection of one transaction, its counter slot, and its pending hour deltas."""

    conn: Connection
    slot: int
    _counts: list[tuple[str, str, int]] = field(default_factory=list)
    _hours: dict[tuple[str, str, int], list[int]] = field(default_factory=dict)

    @classmethod
    def on(cls, conn: Connection) -> Write:
        return cls(conn, conn.get_server_pid() % _SLOTS)

    def count(self, before: str | None, after: Iterable[tuple[str, str]]) -> None:
        """Count jobs that were ``before`` (None: new jobs) and are now ``(kind, status)``."""
        for kind, status in after:
            if status != before:
                self._counts.append((kind, status, 1))
                if before is not None:
                    self._counts.append((kind, before, -1))

    def hours(self, changes: Iterable[Change]) -> None:
        """Count new jobs, and move ended ones from their old end to their new one."""
        for job, before, before_run in changes:
            status, hour = job.status.value, job.created_at // HOUR_MS
            if before is None:
                self._add(job, CREATED, hour, None, 1)
            elif before in _ENDED:
                self._add(job, before, hour, before_run, -1)
            if status in _ENDED:
                self._add(job, status, hour, run_ms(status, job.started_at, job.completed_at), 1)

    def _add(self, job: Job, status: str, hour: int, run: int | None, sign: int) -> None:
        for channel in ("", *job.channels):
            delta = self._hours.setdefault((channel, status, hour), [0, 0, 0])
            delta[0] += sign
            if run is not None:
                delta[1] += sign * run
                delta[2] += sign

    async def flush(self) -> None:
        """Write the gathered deltas (call last in the transaction)."""
        await add_counts(self.conn, self.slot, self._counts)  # sorted by key there
        self._counts.clear()
        rows = sorted((*key, self.slot, *delta)
                      for key, delta in self._hours.items() if any(delta))
        self._hours.clear()
        if rows:
            await self.conn.execute(_HOURS, *(list(column) for column in zip(*rows, strict=True)))
