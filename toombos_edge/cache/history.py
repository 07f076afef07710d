"""An invalidation of the content cache in the client contract's shapes: as the history
lists it, and as the ``cache_invalidated`` event tells it."""

from __future__ import annotations

from typing import Any

from ..ids import iso
from ..store.cache import Invalidation

TARGET = "local"


def to_json(entry: Invalidation) -> dict[str, Any]:
    return {
        "id": entry.id,
        "timestamp": iso(entry.ts),
        "actor": entry.actor,
        "invalidated": entry.invalidated,
        "cache_keys": list(entry.keys),
        "pattern": entry.pattern,
        "tags": list(entry.tags),
        "cleared": entry.cleared,
        "targets": [TARGET],
    }


def event_data(entry: Invalidation) -> dict[str, Any]:
    """The data of ``cache_invalidated``: what other nodes' caches drop (cache/remote.py)."""
    return {"keys": list(entry.keys), "pattern": entry.pattern, "tags": list(entry.tags),
            "cleared": entry.cleared, "invalidated": entry.invalidated,
            "targets": [TARGET], "actor": entry.actor}
