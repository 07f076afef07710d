"""The content-addressed blob store: each original upload once, at ``blobs/ab/cd/<sha256>``.

A blob is named by the SHA-256 of its bytes, so two uploads of the same content share one
file. Blobs are adopted by an atomic rename from the uploads folder (same file system), so a
blob path either holds the complete content or does not exist. Documents count as the
references: the document service removes a blob when the last document using it goes.

The service reaches blobs through ``store.blobs.Blobs``, which :class:`BlobStore` satisfies
on one node (and on several sharing a directory). With several nodes on PostgreSQL and no shared
directory, ``store/postgres/blobs.py`` keeps the originals (and the uploads waiting for a job
that any node may run) in the database, this folder being the node's cache of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import math
import os
import re
import secrets
from pathlib import Path

from ..store.blobs import ASIDE_SUFFIX, Blobs, SharedUpload, Unused
from ..store.space import SpaceState
from .uploads import UploadFolder

__all__ = ["HASH_CHUNK", "BlobStore", "Blobs", "file_storage", "fsync_dir", "hash_file",
           "is_sha256"]

_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
HASH_CHUNK = 1 << 20


def is_sha256(value: str) -> bool:
    return bool(_SHA256_RE.match(value))


def hash_file(path: Path) -> str:
    """SHA-256 of a file, read in 1 MiB steps (blocking: call it off the event loop)."""
    digest = hashlib.sha256()
    with path.open("rb") as source:
        while chunk := source.read(HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


class BlobStore:
    """Files under ``root`` named by their SHA-256. Its plain methods block (call them off
    the loop); its coroutines, the :class:`Blobs` protocol, run them in a thread. Every
    node that runs jobs sees these files (one node, or a directory they share): there is
    no upload to share."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.adopted = 0
        self.deduplicated = 0
        self.removed = 0

    def __repr__(self) -> str:
        return (
            f"<BlobStore {self.root} adopted={self.adopted} "
            f"deduplicated={self.deduplicated} removed={self.removed}>"
        )

    def path(self, sha256: str) -> Path:
        """Where the blob of this hash lives (whether or not it exists)."""
        if not is_sha256(sha256):
            raise ValueError(f"not a SHA-256 hex digest: {sha256!r}")
        return self.root / sha256[:2] / sha256[2:4] / sha256

    def exists(self, sha256: str) -> bool:
        return self.path(sha256).is_file()

    def adopt(self, source: Path, sha256: str) -> bool:
        """Move ``source`` in as the blob ``sha256``; True if new, False if already stored.

        The caller vouches that ``sha256`` is the hash of ``source``. When the blob already
        exists, ``source`` is deleted: the bytes are the same.
        """
        target = self.path(sha256)
        if target.is_file():
            source.unlink(missing_ok=True)
            self.deduplicated += 1
            return False
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(source, target)
        fsync_dir(target.parent)
        self.adopted += 1
        return True

    def settled(self, before: float) -> list[str]:
        """Hashes of the blobs last changed (written or renamed in) before ``before``
        (epoch seconds): a younger one may belong to an ingest not yet recorded."""
        return [path.name for path in self.root.glob("??/??/*")
                if is_sha256(path.name) and _changed_before(path, before)]

    def remove(self, sha256: str) -> bool:
        """Delete the blob; True if it existed."""
        try:
            self.path(sha256).unlink()
        except FileNotFoundError:
            return False
        self.removed += 1
        return True

    def set_aside(self, sha256: str) -> Path | None:
        """Rename the blob out of its name (None: it is not there). An ingest of the same
        bytes that looks for it now stores its own copy instead of counting on this one."""
        path = self.path(sha256)
        aside = path.with_name(f"{sha256}.{secrets.token_hex(4)}{ASIDE_SUFFIX}")
        try:
            os.replace(path, aside)
        except FileNotFoundError:
            return None
        return aside

    def put_back(self, aside: Path, sha256: str) -> None:
        """Return a set-aside blob to its name. A copy stored there meanwhile holds the
        same bytes; a start may have put it back already."""
        with contextlib.suppress(FileNotFoundError):
            os.replace(aside, self.path(sha256))
            fsync_dir(aside.parent)

    def discard(self, aside: Path) -> bool:
        """Remove a set-aside blob; False if a start put it back meanwhile."""
        try:
            aside.unlink()
        except FileNotFoundError:
            return False
        self.removed += 1
        return True

    def put_back_all(self, before: float = math.inf) -> int:
        """Put back every blob a drop set aside and left so (a crash), last changed before
        ``before`` (epoch seconds; at start, all); returns how many. Putting back is always
        safe: a blob no one uses is found by a later sweep."""
        count = 0
        for aside in self.root.glob("??/??/*" + ASIDE_SUFFIX):
            sha256 = aside.name.split(".", 1)[0]
            if is_sha256(sha256) and _changed_before(aside, before):
                self.put_back(aside, sha256)
                count += 1
        return count


    # -- Blobs -------------------------------------------------------------------------------

    async def keep(self, source: Path, sha256: str, upload: str | None = None) -> bool:
        return await asyncio.to_thread(self.adopt, source, sha256)

    async def fetch(self, sha256: str) -> Path | None:
        path = self.path(sha256)
        return path if await asyncio.to_thread(path.is_file) else None

    async def drop(self, sha256: str, unused: Unused) -> bool:
        """Set the file aside, ask ``unused`` again, then remove it or put it back: an
        ingest (on any node sharing the folder) that found the file before it was set aside
        has its job stored by then, and ``unused`` sees it. Shielded: a caller cancelled
        meanwhile (a stop) does not leave the file aside."""
        return await asyncio.shield(self._drop(sha256, unused))

    async def _drop(self, sha256: str, unused: Unused) -> bool:
        aside = await asyncio.to_thread(self.set_aside, sha256)
        if aside is None:
            return False
        try:
            gone = await unused()
        except BaseException:  # the database did not answer: keep the blob
            await asyncio.to_thread(self.put_back, aside, sha256)
            raise
        if gone:
            return await asyncio.to_thread(self.discard, aside)
        await asyncio.to_thread(self.put_back, aside, sha256)
        return False

    async def recover(self, before: float = math.inf) -> int:
        return await asyncio.to_thread(self.put_back_all, before)

    async def settled_before(self, before: float) -> list[str]:
        return await asyncio.to_thread(self.settled, before)

    async def share_upload(self, source: Path, upload: SharedUpload) -> None:
        return None

    async def fetch_upload(self, upload: SharedUpload, target: Path) -> bool:
        return False

    async def drop_upload(self, name: str) -> None:
        return None

    async def forget_uploads(self, keep: set[str], before: float) -> int:
        return 0


def _changed_before(path: Path, before: float) -> bool:
    try:
        status = path.stat()
    except FileNotFoundError:
        return False
    return max(status.st_mtime, status.st_ctime) < before


def file_storage(data_dir: Path, shared_dir: Path | None,
                 space: SpaceState | None = None) -> tuple[BlobStore, UploadFolder]:
    """The blob files and the uploads folder: ``blobs/`` and ``uploads/`` of the shared
    directory when there is one (every node sees every file; a node's sweep leaves files
    that may be another's in flight), else of the data dir (this node's own)."""
    if shared_dir is None:
        return BlobStore(data_dir / "blobs"), UploadFolder(data_dir / "uploads", space)
    return BlobStore(shared_dir / "blobs"), UploadFolder(
        shared_dir / "uploads", space, shared=True)


def fsync_dir(folder: Path) -> None:
    """Make a rename durable (the directory entry), where the platform allows it."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
