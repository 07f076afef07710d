"""Retention's deletions in SQLite: the jobs' and content's prune statements, and
``PRAGMA incremental_vacuum`` to give freed pages back a few at a time."""

from __future__ import annotations

from collections.abc import Sequence

from ..retention import VersionPosition
from . import content as content_store
from . import job_prune
from .database import Database, vacuum_pages


class SqliteRetentionStore:
    """:class:`~toombos_edge.store.retention.RetentionStore` of the database file.

    Deletions say ``frees=True`` to the writer: they may use its small reserve past
    ``db_max_size_mb``, so that a full file can still be pruned.
    """

    def __init__(self, db: Database) -> None:
        self._db = db

    def __repr__(self) -> str:
        return f"<SqliteRetentionStore {self._db.path}>"

    async def prune_ended_jobs(
        self, statuses: Sequence[str], ended_before: int, limit: int
    ) -> int:
        return await self._db.write(
            lambda c: job_prune.prune_ended(c, statuses, ended_before, limit), frees=True)

    async def prune_oldest_jobs(self, status: str, keep: int, limit: int) -> int:
        return await self._db.write(
            lambda c: job_prune.prune_oldest(c, status, keep, limit), frees=True)

    async def prune_content_versions(
        self, after: VersionPosition, keep: int, replaced_before: int, scan: int
    ) -> tuple[int, VersionPosition | None]:
        return await self._db.write(
            lambda c: content_store.prune_versions(c, after, keep, replaced_before, scan),
            frees=True)

    async def give_back_space(self, most: int) -> int:
        return await self._db.write(lambda c: vacuum_pages(c, most))
