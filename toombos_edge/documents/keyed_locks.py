"""One asyncio lock per key, kept only while some task holds or waits for it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field


@dataclass(slots=True)
class _Held:
    """A key's lock and how many tasks hold or wait for it (dropped at zero)."""

    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: int = 0


class KeyedLocks:
    """``async with locks.hold(key)``: one task at a time per key; no entry is left behind
    for a key nobody holds, so the map stays as small as the work in flight."""

    def __init__(self) -> None:
        self._held: dict[str, _Held] = {}

    def __len__(self) -> int:
        return len(self._held)

    def __repr__(self) -> str:
        return f"<KeyedLocks held={len(self._held)}>"

    @contextlib.asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        entry = self._held.get(key)
        if entry is None:
            entry = self._held[key] = _Held()
        entry.users += 1
        try:
            async with entry.lock:
                yield
        finally:
            entry.users -= 1
            if entry.users == 0:
                del self._held[key]
