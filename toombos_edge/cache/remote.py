"""Other nodes' cache invalidations, applied to this node's cache.

Each node renders into a cache of its own (a local directory), but an invalidation is
meant for every node. The node that was asked drops its entries, records the invalidation
in the history (one table that all nodes share) and publishes ``cache_invalidated``; the
bridge carries that event to every other node's bus as a
:class:`~toombos_edge.events_wire.RemoteEvent`, and here the same entries (keys, pattern,
tags, or everything) are dropped from this node's cache. Nothing is recorded (the history
has the line already) and nothing is published (the hub sends the remote event to this
node's sockets as it is, and the bridge never sends a remote event on).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeGuard

from ..events import CACHE_INVALIDATED, Event, EventBus
from ..events_wire import is_remote

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Scope:
    """What an invalidation drops: the keys named, those matching the glob ``pattern``, those
    carrying any of ``tags``; or everything (``cleared``)."""

    keys: tuple[str, ...] = ()
    pattern: str | None = None
    tags: tuple[str, ...] = ()
    cleared: bool = False


def scope_of(data: Any) -> Scope | None:
    """The scope a ``cache_invalidated`` event's data names; None when it is not one (a
    node of another version, a bug): better to drop nothing than to guess."""
    if not isinstance(data, dict):
        return None
    keys, tags = data.get("keys"), data.get("tags")
    pattern, cleared = data.get("pattern"), data.get("cleared")
    if (_strings(keys) and _strings(tags) and isinstance(cleared, bool)
            and (pattern is None or isinstance(pattern, str))):
        return Scope(tuple(keys), pattern, tuple(tags), cleared)
    return None


def _strings(value: Any) -> TypeGuard[list[str]]:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


class RemoteInvalidations:
    """Subscribes to the bus and applies each remote ``cache_invalidated`` with ``drop``
    (which returns the entries removed and never raises for a failing cache)."""

    def __init__(self, drop: Callable[[Scope], Awaitable[int]]) -> None:
        self._drop = drop
        self._unsubscribe: Callable[[], None] | None = None
        self._pending: set[asyncio.Task[None]] = set()
        self.applied = self.removed = self.refused = 0

    def __repr__(self) -> str:
        return (f"<RemoteInvalidations applied={self.applied} removed={self.removed} "
                f"refused={self.refused} pending={len(self._pending)}>")

    def start(self, bus: EventBus) -> None:
        if self._unsubscribe is None:
            self._unsubscribe = bus.subscribe(self.on_event)

    async def close(self) -> None:
        """Leave the bus and finish the invalidations under way."""
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        while self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)

    def on_event(self, event: Event) -> None:
        """The bus subscriber: returns at once; the drop runs on the cache's thread, in the
        order the events came (one thread, first come first served)."""
        if event.type != CACHE_INVALIDATED or not is_remote(event):
            return
        scope = scope_of(event.body.get("data"))
        if scope is None:
            self.refused += 1
            log.warning("ignoring a cache invalidation from another node that names no "
                        "scope: %r", event.body.get("data"))
            return
        task = asyncio.get_running_loop().create_task(self._apply(scope))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _apply(self, scope: Scope) -> None:
        try:
            removed = await self._drop(scope)
        except Exception:  # a bug: logged; the next invalidation still goes through
            log.exception("applying a cache invalidation from another node failed")
            return
        self.applied += 1
        self.removed += removed
