"""The protocol of the API keys' storage.

Keys are few and read whole: the server holds the active ones in memory and checks
requests there; the store is written when a key is made or revoked and, in batches, when
keys were used. Another process (the CLI) may change keys at any time; a server sees the
change at its next :meth:`KeyStore.active`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from ..records.key import ApiKey


class KeyStore(Protocol):
    """Where API keys are kept."""

    async def insert(self, key: ApiKey) -> None:
        """Store a new key (its id is new; its secret only as ``secret_hash``)."""
        ...

    async def page(self, limit: int = -1, offset: int = 0) -> list[ApiKey]:
        """Keys in the order of their ids (oldest first), revoked ones included;
        ``limit`` -1 means all."""
        ...

    async def revoke(self, key_id: str, at: int) -> tuple[ApiKey, bool] | None:
        """Mark the key revoked at ``at`` unless it already is (the first revocation's time
        stays); returns the key as it is now and whether this call revoked it (of calls
        racing, one), None if there is no such key."""
        ...

    async def active(self) -> list[ApiKey]:
        """Every key not revoked, as committed now."""
        ...

    async def record_use(self, last_used: Mapping[str, int]) -> None:
        """Set ``last_used_at`` of each key id to its time, in one transaction (an id
        with no key is ignored). A store shared by several servers keeps the latest time
        recorded: their batches may commit in either order."""
        ...

    async def count(self) -> int:
        """How many keys there are, revoked ones included."""
        ...
