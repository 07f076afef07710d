"""The protocol of the cache's invalidation history (the cache itself is diskcache's file).

Every invalidation and clear of the content cache is recorded, so that an operator can see
who emptied what; the history is bounded: only the newest :data:`HISTORY_LIMIT` are kept.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

HISTORY_LIMIT = 500  #: invalidations kept; older ones go as new ones are recorded


@dataclass(frozen=True, slots=True)
class Invalidation:
    """One invalidation or clear, as recorded."""

    id: str  #: our string id (``inv_…``)
    ts: int  #: when, in ms since the epoch
    actor: str | None  #: who asked (a key id), None: the server
    invalidated: int  #: entries removed
    keys: tuple[str, ...] = ()
    pattern: str | None = None
    tags: tuple[str, ...] = ()
    cleared: bool = False  #: the whole cache was cleared


class InvalidationHistory(Protocol):
    """Where invalidations are recorded."""

    async def record(self, entry: Invalidation) -> None:
        """Store ``entry`` and drop all but the newest ``HISTORY_LIMIT`` entries, in one
        transaction (a reader sees at most ``HISTORY_LIMIT``)."""
        ...

    async def newest(self, limit: int) -> list[Invalidation]:
        """Up to ``limit`` entries, newest first: by ``ts`` descending, then ``id``
        descending for entries of the same millisecond."""
        ...
