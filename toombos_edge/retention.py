"""Retention: old jobs, the dead set, old content versions and unused blobs go; the file
shrinks.

Every deletion runs through the database's one writer in batches of at most ``batch`` rows
(each batch its own short transaction, group-committed with whatever else is queued) and
the loop yields between batches, so requests never wait behind a long prune. The jobs
store keeps its counts per kind and status exact as it deletes. After pruning, freed pages
go back to the file system a few at a time (``PRAGMA incremental_vacuum``).

A table with its own retention adds one :class:`Rule` in :meth:`Retention.rules`.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass

from .content import store as content_store
from .documents.service import DocumentService
from .ids import now_ms
from .settings import Settings
from .store import Database
from .store.sqlite import jobs as jobs_store
from .store.sqlite.database import vacuum_pages

log = logging.getLogger(__name__)

DAY_MS = 86_400_000
BATCH_ROWS = 500  #: rows deleted per transaction
VACUUM_PAGES = 256  #: pages given back per transaction (1 MiB of 4 KiB pages)
SCAN_ROWS = 2000  #: content versions examined per transaction
BLOB_GRACE_SECONDS = 3600.0  #: a younger unused blob may be an ingest not yet recorded
FIRST_RUN_SECONDS = 60.0  #: the first run after a start (then every interval)
FINISHED = ("completed", "partial", "cancelled")

#: (connection, now in ms, most rows to delete) -> rows deleted; runs inside the writer.
Prune = Callable[[sqlite3.Connection, int, int], int]


@dataclass(frozen=True, slots=True)
class Rule:
    name: str
    prune: Prune


@dataclass(frozen=True, slots=True)
class Policy:
    """What to keep; 0 keeps everything for that rule."""

    finished_days: float = 30.0
    dead_days: float = 90.0
    dead_max: int = 10_000
    content_versions: int = 50
    content_version_days: float = 365.0

    @classmethod
    def from_settings(cls, settings: Settings) -> Policy:
        return cls(settings.retain_finished_days, settings.retain_dead_days,
                   settings.dead_max, settings.retain_content_versions,
                   settings.retain_content_version_days)


def _cutoff(now: int, days: float) -> int:
    return now - int(days * DAY_MS)


class Retention:
    """Runs the rules now and then (``run_forever``) or once (``run_once``, for tests)."""

    def __init__(
        self,
        db: Database,
        documents: DocumentService | None,
        policy: Policy,
        *,
        clock: Callable[[], int] = now_ms,
        batch: int = BATCH_ROWS,
        blob_grace: float = BLOB_GRACE_SECONDS,
    ) -> None:
        self._db = db
        self._documents = documents
        self.policy = policy
        self._clock = clock
        self._batch = batch
        self._blob_grace = blob_grace
        self.runs = 0
        self.removed: dict[str, int] = {}
        self.ran = asyncio.Event()  #: set after each run (tests and probes wait on it)

    def __repr__(self) -> str:
        return f"<Retention runs={self.runs} removed={self.removed}>"

    def rules(self) -> list[Rule]:
        """The row-deleting rules the policy turns on."""
        p, rules = self.policy, []
        if p.finished_days:
            rules.append(Rule("finished_jobs", lambda c, now, n: jobs_store.prune_ended(
                c, FINISHED, _cutoff(now, p.finished_days), n)))
        if p.dead_days:
            rules.append(Rule("dead_jobs", lambda c, now, n: jobs_store.prune_ended(
                c, ("failed",), _cutoff(now, p.dead_days), n)))
        if p.dead_max:
            rules.append(Rule("dead_over_cap", lambda c, now, n: jobs_store.prune_oldest(
                c, "failed", p.dead_max, n)))
        return rules

    async def run_forever(self, interval: float) -> None:
        await asyncio.sleep(min(interval, FIRST_RUN_SECONDS))
        while True:
            try:
                await self.run_once()
            except Exception:  # a failed run must not end retention; the next one retries
                log.exception("retention run failed")
            await asyncio.sleep(interval)

    async def run_once(self) -> dict[str, int]:
        """Apply every rule, sweep unused blobs, give freed pages back; returns the counts."""
        now = self._clock()
        counts = {rule.name: await self._apply(rule, now) for rule in self.rules()}
        counts["content_versions"] = await self._prune_versions(now)
        if self._documents is not None:
            settled = time.time() - self._blob_grace
            counts["blobs"] = await self._documents.sweep_blobs(settled, self._batch)
        counts["vacuumed_pages"] = await self.vacuum()
        self.runs += 1
        for name, n in counts.items():
            self.removed[name] = self.removed.get(name, 0) + n
        self.ran.set()
        if any(counts.values()):
            log.info("retention removed %s", counts)
        return counts

    async def _apply(self, rule: Rule, now: int) -> int:
        total, batch = 0, self._batch
        while True:
            n = await self._db.write(lambda c: rule.prune(c, now, batch), frees=True)
            total += n
            if n < batch:
                return total
            await asyncio.sleep(0)  # let queued requests in between two batches

    async def _prune_versions(self, now: int) -> int:
        p = self.policy
        if not (p.content_versions or p.content_version_days):
            return 0
        before = _cutoff(now, p.content_version_days) if p.content_version_days else 0
        total, position = 0, ("", 0)

        def step(conn: sqlite3.Connection) -> tuple[int, tuple[str, int] | None]:
            return content_store.prune_versions(
                conn, position, p.content_versions, before, SCAN_ROWS)

        while True:
            n, going_on = await self._db.write(step, frees=True)
            total += n
            if going_on is None:
                return total
            position = going_on
            await asyncio.sleep(0)

    async def vacuum(self) -> int:
        """Give every free page back to the file system, ``VACUUM_PAGES`` per transaction."""
        total = 0
        while True:
            n = await self._db.write(lambda c: vacuum_pages(c, VACUUM_PAGES))
            total += n
            if n < VACUUM_PAGES:
                return total
            await asyncio.sleep(0)
