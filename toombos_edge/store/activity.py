"""The protocol of the activity log's storage: append-only lines, read newest first.

Lines come with their ids (:mod:`toombos_edge.records.activity`: an id is its time), so
every read is a range of ids: a page walks back from a cursor, a follow walks forward from
the last id seen. Lines are never changed; old ones are pruned in bounded steps.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from ..records.activity import ActivityFilter, Row

#: (id, line) of one line read back.
Line = tuple[int, str]


class ActivityStore(Protocol):
    """Where activity lines are kept."""

    async def last_id(self) -> int:
        """The largest id stored, 0 when there is none (new ids continue after it)."""
        ...

    async def insert(self, rows: Sequence[Row]) -> None:
        """Store every row in one transaction: all of them or, on failure, none. Ids come
        increasing; each is moved past the largest stored when it is not above it
        (``records.activity.above``: another writer of the table was there first)."""
        ...

    async def prune(self, before_ms: int, limit: int) -> int:
        """Remove up to ``limit`` lines older than ``before_ms`` (oldest first), in one
        transaction; returns how many went (fewer than ``limit``: none older is left)."""
        ...

    async def page(
        self, flt: ActivityFilter, limit: int, before: int | None = None
    ) -> list[Line]:
        """Up to ``limit`` lines matching ``flt``, newest first (by id), with an id below
        ``before`` if given (the last page's smallest id: a cursor)."""
        ...

    async def after(self, flt: ActivityFilter, since_id: int, limit: int) -> list[Line]:
        """Up to ``limit`` lines matching ``flt`` with an id above ``since_id``, oldest
        first (following the log)."""
        ...
