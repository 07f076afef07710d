"""The protocol of retention's deletions: old jobs, the dead set's cap, old content versions,
and giving freed space back.

Every method deletes a bounded amount in one short transaction, so that a prune never holds
the writer for long; the caller loops until a call returns fewer than it allowed. Counts
the store keeps (jobs per kind and status, the hourly roll-up) stay exact as it deletes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

#: Where a scan of content versions goes on: after (content id, version).
VersionPosition = tuple[str, int]


class RetentionStore(Protocol):
    """The deletions retention runs."""

    async def prune_ended_jobs(
        self, statuses: Sequence[str], ended_before: int, limit: int
    ) -> int:
        """Delete up to ``limit`` jobs in one of ``statuses`` (ended ones) that ended before
        ``ended_before`` (ms); returns how many."""
        ...

    async def prune_oldest_jobs(self, status: str, keep: int, limit: int) -> int:
        """Delete the oldest jobs of ``status`` beyond its newest ``keep``, at most
        ``limit``; returns how many."""
        ...

    async def prune_content_versions(
        self, after: VersionPosition, keep: int, replaced_before: int, scan: int
    ) -> tuple[int, VersionPosition | None]:
        """Among the next ``scan`` earlier versions after ``after`` (in content id, version
        order), delete those beyond the ``keep`` newest of their item (0: keep all) or
        replaced before ``replaced_before``. Returns how many went and where the next call
        goes on (None: the end)."""
        ...

    async def give_back_space(self, most: int) -> int:
        """Return up to ``most`` units of freed storage to the file system (a backend that
        does this by itself returns 0); returns how many went."""
        ...
