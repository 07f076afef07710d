"""The content cache: diskcache under ``<data>/cache``, bytes values and str keys only.

Nothing is ever pickled or unpickled: :class:`SafeDisk` refuses any other key or value
type, and refuses to read a pickled row (a tampered cache file must not run code). Every
call runs on the cache's one thread, never on the event loop. The cache is an
optimisation: a failure is logged and counted, a corrupt or vanished directory is rebuilt,
and callers get a miss instead of an error.

The cache is per node; invalidations are not: one asked of any node reaches every node's
cache through the bus (:mod:`.remote`).
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import diskcache

from ..events import CACHE_INVALIDATED, Event, EventBus
from ..health import PASS, WARN, Check
from ..ids import iso, new_id, now_ms
from ..store.cache import Invalidation, InvalidationHistory
from ..store.errors import is_database_error, is_unreadable
from .disk import SafeDisk, corrupt, encode_tags, invalidate
from .history import TARGET, event_data, to_json
from .remote import RemoteInvalidations, Scope

T = TypeVar("T")
log = logging.getLogger(__name__)

DB_FILE = "cache.db"


class ContentCache:
    """Rendered content by key; implements the job context's ``Cache`` protocol."""

    def __init__(
        self,
        directory: Path,
        *,
        history: InvalidationHistory | None = None,
        bus: EventBus | None = None,
        size_limit_mb: int = 256,
        ttl_seconds: int = 7 * 86400,
    ) -> None:
        self.directory = directory
        self._history = history
        self._bus = bus
        self._size_limit = size_limit_mb * 2**20
        self.ttl_seconds = ttl_seconds
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="cache")
        self._cache: diskcache.Cache | None = None
        self._lock = threading.Lock()
        self.hits = self.misses = self.sets = self.evictions = 0
        self.errors = self.rebuilds = 0
        self.last_error: str | None = None
        #: Other nodes' invalidations applied here (it listens once the cache is open).
        self.remote = RemoteInvalidations(self._drop)

    def __repr__(self) -> str:
        return (
            f"<ContentCache hits={self.hits} misses={self.misses} sets={self.sets} "
            f"errors={self.errors} rebuilds={self.rebuilds}>"
        )

    # -- lifetime ---------------------------------------------------------------------

    async def open(self) -> None:
        """Open (or rebuild) the cache directory; never raises for a broken cache. With a
        bus, apply other nodes' invalidations from now on."""
        await self._call(lambda c: None, None)
        if self._bus is not None:
            self.remote.start(self._bus)

    async def close(self) -> None:
        await self.remote.close()
        await asyncio.get_running_loop().run_in_executor(self._thread, self._close_now)
        self._thread.shutdown(wait=True)

    def _close_now(self) -> None:
        if self._cache is not None:
            self._cache.close()
            self._cache = None

    # -- the Cache protocol -------------------------------------------------------------

    async def get(self, key: str) -> bytes | None:
        """The cached bytes, or None on a miss (or when the cache is failing)."""
        value = await self._call(lambda c: c.get(key, default=None, retry=True), None)
        if isinstance(value, bytes):
            self.hits += 1
            return value
        self.misses += 1
        return None

    async def set(self, key: str, value: bytes, tags: Iterable[str] = ()) -> None:
        """Store ``value`` under ``key`` with its tags; a failure is logged, not raised."""
        tag = encode_tags(tags)
        ttl = self.ttl_seconds or None
        done = await self._call(
            lambda c: c.set(key, value, expire=ttl, tag=tag, retry=True), False
        )
        if done:
            self.sets += 1

    # -- management ---------------------------------------------------------------------

    async def invalidate(
        self,
        keys: Iterable[str] = (),
        pattern: str | None = None,
        tags: Iterable[str] = (),
        actor: str | None = None,
    ) -> dict[str, Any]:
        """Remove entries named, matching the glob ``pattern``, or carrying any of ``tags``."""
        return await self._invalidate(Scope(tuple(keys), pattern, tuple(tags)), actor)

    async def clear(self, actor: str | None = None) -> dict[str, Any]:
        """Remove every entry."""
        return await self._invalidate(Scope(cleared=True), actor)

    async def expire(self, now: float | None = None) -> int:
        """Drop entries expired at ``now`` (seconds; default: now); counted as evictions."""
        removed: int = await self._call(lambda c: c.expire(now=now, retry=True), 0)
        self.evictions += removed
        return removed

    async def stats(self) -> dict[str, Any]:
        """The client contract's cache statistics."""
        empty: tuple[int, int, float | None] = (0, 0, None)
        keys, volume, oldest = await self._call(self._measure, empty)
        lookups = self.hits + self.misses
        hit_rate = round(self.hits / lookups, 4) if lookups else 0.0
        memory_mb = round(volume / 2**20, 3)
        return {
            "total_keys": keys,
            "hit_rate": hit_rate,
            "miss_rate": round(1 - hit_rate, 4) if lookups else 0.0,
            "hits": self.hits,
            "misses": self.misses,
            "sets": self.sets,
            "evictions": self.evictions,
            "errors": self.errors,
            "memory_usage_mb": memory_mb,
            "avg_ttl_seconds": self.ttl_seconds,
            # A number even when empty: the dashboard formats it without a null check.
            "oldest_key_age_seconds": 0.0 if oldest is None else oldest,
            "cache_targets": {
                TARGET: {
                    "enabled": True, "hit_rate": hit_rate,
                    "total_keys": keys, "memory_mb": memory_mb,
                }
            },
        }

    async def history(self, limit: int = 100) -> list[dict[str, Any]]:
        """Invalidations and clears, newest first."""
        if self._history is None:
            return []
        return [to_json(entry) for entry in await self._history.newest(limit)]

    async def check(self) -> Check:
        """The health check: the directory is usable and recent calls succeeded."""
        total = await self._call(len, None)
        if total is None:
            return Check(WARN, f"cache failing: {self.last_error}")
        return Check(PASS, f"{total} keys, {self.errors} errors, {self.rebuilds} rebuilds")

    # -- internals --------------------------------------------------------------------

    def _measure(self, cache: diskcache.Cache) -> tuple[int, int, float | None]:
        oldest = None
        if self.ttl_seconds:
            try:
                _item, expire_at = cache.peekitem(last=False, expire_time=True)
            except KeyError:
                pass
            else:
                stored_at = expire_at - self.ttl_seconds
                oldest = round(max(0.0, now_ms() / 1000 - stored_at), 3)
        return len(cache), cache.volume(), oldest

    async def _drop(self, scope: Scope) -> int:
        """Remove the entries ``scope`` names (none when the cache is failing)."""
        if scope.cleared:
            return await self._call(lambda c: c.clear(retry=True), 0)
        keys, pattern, tags = list(scope.keys), scope.pattern, set(scope.tags)
        return await self._call(lambda c: invalidate(c, keys, pattern, tags), 0)

    async def _invalidate(self, scope: Scope, actor: str | None) -> dict[str, Any]:
        """Drop, record in the history and tell the bus (and so the other nodes)."""
        removed = await self._drop(scope)
        at = now_ms()
        entry = Invalidation(new_id("inv"), at, actor, removed, scope.keys, scope.pattern,
                             scope.tags, scope.cleared)
        if self._history is not None:
            try:
                await self._history.record(entry)
            except Exception:  # history is a log; losing a line must not fail the call
                log.exception("could not record a cache invalidation")
        data = event_data(entry)
        if self._bus is not None:
            self._bus.publish(Event.data(CACHE_INVALIDATED, data))
        return {"invalidated": removed, "targets": [TARGET], "timestamp": iso(at),
                "keys": list(entry.keys), "pattern": entry.pattern, "tags": list(entry.tags),
                "cleared": entry.cleared}

    async def _call(self, fn: Callable[[diskcache.Cache], T], default: T) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._thread, self._guarded, fn, default)

    def _guarded(self, fn: Callable[[diskcache.Cache], T], default: T) -> T:
        """Run ``fn`` on the cache thread; rebuild a broken cache once; never raise."""
        for attempt in (1, 2):
            try:
                return fn(self._ensure_open())
            except Exception as exc:
                if not _expected(exc):
                    raise
                self.errors += 1
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.warning("cache call failed (attempt %d): %s", attempt, self.last_error)
                if attempt == 2 or not corrupt(exc):
                    break
                self._rebuild()
        return default

    def _ensure_open(self) -> diskcache.Cache:
        if self._cache is not None and (self.directory / DB_FILE).exists():
            return self._cache
        if self._cache is not None:  # the directory vanished under us
            self._rebuild()
        try:
            self._cache = self._open()
        except Exception as exc:
            if not is_unreadable(exc):
                raise
            self._rebuild()
            self._cache = self._open()
        return self._cache

    def _open(self) -> diskcache.Cache:
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.directory.chmod(0o700)
        return diskcache.Cache(
            str(self.directory),
            disk=SafeDisk,
            size_limit=self._size_limit,
            eviction_policy="least-recently-stored",
        )

    def _rebuild(self) -> None:
        """Throw the directory away and start empty (the cache only holds derived data)."""
        with self._lock:
            log.warning("rebuilding the cache at %s", self.directory)
            self._close_now_quietly()
            shutil.rmtree(self.directory, ignore_errors=True)
            self.rebuilds += 1

    def _close_now_quietly(self) -> None:
        try:
            self._close_now()
        except Exception as exc:
            if not (is_database_error(exc) or isinstance(exc, OSError)):
                raise
            self._cache = None


def _expected(exc: Exception) -> bool:
    """A failure of the cache's file or its use (logged and counted), not a bug of ours."""
    return is_database_error(exc) or isinstance(exc, (OSError, diskcache.Timeout, TypeError))
