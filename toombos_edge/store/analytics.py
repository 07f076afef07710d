"""The protocol of analytics' storage: job counts per hour of creation, summed over windows.

Hours are whole UTC hours numbered from the epoch (``ms // HOUR_MS``). A job belongs to
the hour it was created in and counts under its status now; a window is a range of hours,
both ends included. The sums must not cost in proportion to the number of jobs: a backend
keeps counts per hour (as the jobs store maintains them), not a scan of the jobs.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from .jobs import CREATED, HOUR_MS

__all__ = ["HOUR_MS", "AnalyticsStore", "Summary", "Sums", "fold"]


@dataclass(slots=True)
class Sums:
    """Jobs per status, and the run time of those that ran to an end."""

    by_status: dict[str, int] = field(default_factory=dict)
    run_ms: int = 0
    runs: int = 0

    @property
    def total(self) -> int:
        return sum(self.by_status.values())


def fold(rows: Iterable[Sequence[int | str]], running: int) -> Sums:
    """One channel's ``job_hours`` sums, rows of (status, jobs, run_ms, runs), as
    :class:`Sums`, with ``running`` of them in progress now. The row of jobs created
    (``CREATED``) counts every job; those neither ended nor running are pending."""
    sums = Sums()
    created = 0
    for status, n, run, ran in rows:
        if status == CREATED:
            created = int(n)
        elif n:
            sums.by_status[str(status)] = int(n)
        sums.run_ms += int(run)
        sums.runs += int(ran)
    if running:
        sums.by_status["in_progress"] = running
    pending = created - sums.total
    if pending > 0:
        sums.by_status["pending"] = pending
    return sums


@dataclass(frozen=True, slots=True)
class Summary:
    """What one window's analytics need, read from one consistent snapshot."""

    jobs: Sums  #: every job created in the window
    channels: dict[str, Sums]  #: per channel that has jobs in the window (a job may name several)
    buckets: dict[int, int]  #: bucket number (``hour // hours_per_bucket``) → jobs created
    created_since: dict[int, int]  #: first hour asked → jobs created in it or later


class AnalyticsStore(Protocol):
    """Where the counts analytics reads are kept."""

    async def summary(
        self, first_hour: int, last_hour: int, hours_per_bucket: int,
        since_hours: Sequence[int] = (),
    ) -> Summary:
        """The sums of the jobs created in ``[first_hour, last_hour]``, by status (pending,
        in_progress and each end) and per channel; the jobs created per bucket of
        ``hours_per_bucket`` hours (empty buckets left out); and, for each hour of
        ``since_hours``, the jobs created in it or later. All of it is read in one
        transaction: the parts agree with each other."""
        ...
