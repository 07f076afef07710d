"""The originals' storage interface: where documents' blobs and waiting uploads are kept.

One node keeps them as files in its data dir (``documents/blobs.py``'s ``BlobStore``), and
so do several nodes that share a directory (NFS, a shared volume). Several nodes on
PostgreSQL with no shared directory keep them in the database (``postgres/blobs.py``),
each node's files being a cache. Blobs are named by the SHA-256 of their bytes.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Protocol

#: What a file being written is called until it is renamed to its final name; the uploads
#: folder sweeps such leftovers of a crash at start.
PART_SUFFIX = ".part"
#: What a blob file is called while a drop asks the database again whether it is unused
#: (``<sha256>.<token>.gone``, beside it); a start puts back any a crash left.
ASIDE_SUFFIX = ".gone"


class SharedUpload(Protocol):
    """An upload as the blob store needs it (``documents.uploads.Upload``)."""

    @property
    def name(self) -> str: ...
    @property
    def sha256(self) -> str: ...
    @property
    def size(self) -> int: ...


#: Asks the database whether no document or ingest job uses a blob (see ``Blobs.drop``).
Unused = Callable[[], Awaitable[bool]]


class BlobFiles(Protocol):
    """Blob files in one folder, ``root/ab/cd/<sha256>``; every method blocks."""

    root: Path

    def path(self, sha256: str) -> Path: ...
    def exists(self, sha256: str) -> bool: ...
    def adopt(self, source: Path, sha256: str) -> bool: ...
    def settled(self, before: float) -> list[str]: ...
    def remove(self, sha256: str) -> bool: ...


class Blobs(Protocol):
    """Where documents' originals are kept, as the document service uses them.

    ``root``, ``path`` and ``exists`` are this node's files (all of them, or its cache);
    the coroutines may reach further (the database) and never block the loop.
    """

    root: Path

    def path(self, sha256: str) -> Path:
        """Where this node keeps the blob's file (whether or not it is there)."""

    def exists(self, sha256: str) -> bool:
        """Whether this node has the blob's file (blocking)."""

    async def keep(self, source: Path, sha256: str, upload: str | None = None) -> bool:
        """Move ``source`` (hashing to ``sha256``; the upload ``upload``'s file, if it is
        one) in as a blob; True if it was not stored yet."""

    async def fetch(self, sha256: str) -> Path | None:
        """A complete local file of the blob, fetched first if this node lacks it; None
        when it is stored nowhere."""

    async def drop(self, sha256: str, unused: Unused) -> bool:
        """Remove the blob, which the caller found unused; True if something was removed.
        The caller's check may be stale by the time the bytes go (another node's ingest of
        the same bytes can find them and rely on them in between), so the store checks
        again where nothing can take the blob meanwhile: the database's store in the
        statement that drops it; the files with ``unused`` once the file is set aside."""

    async def recover(self, before: float = math.inf) -> int:
        """Finish what a crash cut short (partial downloads, a blob set aside by a drop)
        among the files last changed before ``before`` (epoch seconds); returns how many.
        At start, before anything reads or writes blobs: all of them; the sweep of unused
        blobs repeats it for those older than its grace, for a node that never restarts."""

    async def settled_before(self, before: float) -> list[str]:
        """Hashes of the blobs last stored before ``before`` (epoch seconds)."""

    async def share_upload(self, source: Path, upload: SharedUpload) -> None:
        """Make a finished upload readable by whichever node will run its ingest job."""

    async def fetch_upload(self, upload: SharedUpload, target: Path) -> bool:
        """Bring a shared upload's bytes to ``target`` here; False if it is not shared."""

    async def drop_upload(self, name: str) -> None:
        """Forget a shared upload (its job made the document, or will never run)."""

    async def forget_uploads(self, keep: set[str], before: float) -> int:
        """Forget shared uploads not in ``keep`` stored before ``before``; how many."""
