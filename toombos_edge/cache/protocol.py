"""What the rest of the server may use of the content cache (handlers get it as ``Cache``)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol


class Cache(Protocol):
    """What a handler may use of the content cache: bytes in, bytes out, off the loop."""

    async def get(self, key: str) -> bytes | None: ...

    async def set(self, key: str, value: bytes, tags: Iterable[str] = ()) -> None: ...
