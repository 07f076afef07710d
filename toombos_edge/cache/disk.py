"""diskcache without pickle: str keys and bytes values only, both ways, and tags.

:class:`SafeDisk` refuses any other key or value type and refuses to read a pickled row, so
a tampered cache file cannot run code. An entry's tags are kept in diskcache's indexed
``tag`` column as one string, ``|a|b|``, so that one entry can carry several.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Iterator
from typing import Any

import diskcache
from diskcache.core import MODE_PICKLE, UNKNOWN

from ..store.errors import is_corruption


class CacheRefused(TypeError):
    """A pickled row: the cache file was written by something else; it is rebuilt."""


class WrongType(TypeError):
    """A key that is not str or a value that is not bytes (a caller's mistake)."""


class SafeDisk(diskcache.Disk):  # type: ignore[misc]
    """diskcache's Disk, minus pickle: str keys and bytes values, both ways."""

    def put(self, key: Any) -> Any:
        if type(key) is not str:
            raise WrongType(f"cache keys are str, not {type(key).__name__}")
        return super().put(key)

    def get(self, key: Any, raw: bool) -> Any:
        if not raw:
            raise CacheRefused("refusing to unpickle a cache key")
        return super().get(key, raw)

    def store(self, value: Any, read: bool, key: Any = UNKNOWN) -> Any:
        if type(value) is not bytes:
            raise WrongType(f"cache values are bytes, not {type(value).__name__}")
        return super().store(value, read, key=key)

    def fetch(self, mode: int, filename: str | None, value: Any, read: bool) -> Any:
        if mode == MODE_PICKLE:
            raise CacheRefused("refusing to unpickle a cache value")
        return super().fetch(mode, filename, value, read)


def encode_tags(tags: Iterable[str]) -> str | None:
    """Tags as one indexed string, ``|a|b|``, so one entry can carry several."""
    clean = sorted({t.replace("|", "") for t in tags if t})
    return f"|{'|'.join(clean)}|" if clean else None


def decode_tags(raw: str | None) -> set[str]:
    return {t for t in (raw or "").split("|") if t}


def corrupt(exc: BaseException) -> bool:
    """A damaged file (rebuild it), as opposed to a busy one (``OperationalError``)."""
    if isinstance(exc, CacheRefused):
        return True
    return is_corruption(exc)


def _iter_tagged(cache: diskcache.Cache) -> Iterator[tuple[str, set[str]]]:
    for key in list(cache.iterkeys()):
        found = cache.get(key, default=None, read=True, tag=True, retry=True)
        value, tag = found if isinstance(found, tuple) else (None, None)
        if hasattr(value, "close"):
            value.close()
        yield key, decode_tags(tag)


def invalidate(
    cache: diskcache.Cache, keys: list[str], pattern: str | None, tags: set[str]
) -> int:
    doomed = {k for k in keys if isinstance(k, str)}
    if pattern is not None or tags:
        for key, entry_tags in _iter_tagged(cache):
            if (pattern is not None and fnmatch.fnmatchcase(key, pattern)) or entry_tags & tags:
                doomed.add(key)
    return sum(1 for key in doomed if cache.delete(key, retry=True))
