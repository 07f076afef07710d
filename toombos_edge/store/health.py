"""The protocol of the database's health: is it answering, and has it room to write.

What ``/health`` asks of storage. It is asked often (once a second at most, cached in
between), so each call must be cheap: a round trip, not a scan.
"""

from __future__ import annotations

from typing import Protocol

from .space import SpaceState


class HealthStore(Protocol):
    """The database as the health checks see it."""

    @property
    def space(self) -> SpaceState:
        """The last write failure for lack of space (shared with the writer), if any."""
        ...

    async def ping(self) -> str:
        """One round trip to the database; returns what it is (engine and schema version,
        for the check's message). Raises when the database does not answer."""
        ...

    async def has_room(self) -> bool:
        """Whether a small write would fit now (the disk and any size limit)."""
        ...
