"""Documents' originals in PostgreSQL, for nodes that share no directory.

Every node may be asked for any document's original, and the node that claims an ingest
job is often not the one that took its upload in. So, with no shared directory, the bytes
live in the database: ``blobs`` (one row per SHA-256) with ``blob_chunks`` of at most
``CHUNK`` bytes, and ``uploads``/``upload_chunks`` for uploads waiting for their job. A
statement never carries more than one chunk, so a large file never sits whole in the
server's or this process's memory. Each node keeps its data dir's ``blobs/`` as a
read-through cache: a blob it lacks is fetched to a temporary file, checked against its
size and hash, and renamed into place, so a cached file is always complete (a temporary
file a crash left is removed at the next start).

A blob is dropped from the database in one statement that also checks, on every node's
rows, that no document and no ingest job not yet ended uses it: the document service's
lock covers one process, this covers the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import math
import os
import secrets
import time
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from ..blobs import PART_SUFFIX, BlobFiles, SharedUpload, Unused
from .database import PgDatabase

if TYPE_CHECKING:
    from .migrate import Connection

#: Bytes per chunk row: one statement's payload when writing, one cursor step reading.
CHUNK = 1 << 20
_FETCH_AHEAD = 2  #: chunks a read may have in flight (this process holds at most these)

_IN_USE = """
    EXISTS (SELECT 1 FROM documents WHERE blob_sha256 = $1)
    OR EXISTS (SELECT 1 FROM jobs WHERE kind = 'ingest' AND status IN ('pending', 'in_progress')
               AND params -> 'upload' ->> 'sha256' = $1)"""
_DROP_UNUSED = f"DELETE FROM blobs WHERE sha256 = $1 AND NOT ({_IN_USE}) RETURNING true"


class CorruptBlob(Exception):
    """Bytes read back from the database do not match their recorded size and hash."""


class PgBlobs:
    """The :class:`~toombos_edge.store.blobs.Blobs` of a node on PostgreSQL with no
    shared directory: the database holds every blob, ``cache`` this node's copies."""

    def __init__(self, db: PgDatabase, cache: BlobFiles) -> None:
        self._db = db
        self.cache = cache
        self.root = cache.root
        self.fetched = 0  #: blobs downloaded into the cache
        self._fetching: dict[str, asyncio.Future[Path | None]] = {}

    def __repr__(self) -> str:
        return f"<PgBlobs cache={self.cache!r} fetched={self.fetched}>"

    def path(self, sha256: str) -> Path:
        return self.cache.path(sha256)

    def exists(self, sha256: str) -> bool:
        return self.cache.exists(sha256)

    async def keep(self, source: Path, sha256: str, upload: str | None = None) -> bool:
        added = False
        if not await self._db.fetchval("SELECT true FROM blobs WHERE sha256 = $1", sha256):
            # A retried ingest may find its upload already moved into the cache.
            cached = self.cache.path(sha256)
            origin = source if await asyncio.to_thread(source.is_file) else cached
            added = await self._store(origin, sha256, upload)
        await asyncio.to_thread(self.cache.adopt, source, sha256)
        return added

    async def _store(self, source: Path, sha256: str, upload: str | None) -> bool:
        """The blob's row and chunks, unless another node stored them first (its insert
        holds the key until it commits; this one then does nothing)."""
        size = (await asyncio.to_thread(source.stat)).st_size
        async with self._db.transaction() as conn:
            added = bool(await conn.fetchval(
                "INSERT INTO blobs (sha256, size, stored_at) VALUES ($1, $2, $3) "
                "ON CONFLICT (sha256) DO NOTHING RETURNING true", sha256, size, _now_ms()))
            if added and not await _copy_shared_upload(conn, sha256, upload):
                await _write_chunks(conn, "INSERT INTO blob_chunks (sha256, seq, data) "
                                          "VALUES ($1, $2, $3)", sha256, source)
        return added

    async def fetch(self, sha256: str) -> Path | None:
        target = self.cache.path(sha256)
        if await asyncio.to_thread(target.is_file):
            return target
        # Readers of a blob this node lacks share one download (a document opened by many
        # at once on a fresh node); one reader giving up does not stop it for the others.
        task = self._fetching.get(sha256)
        if task is None:
            task = asyncio.ensure_future(self._fetch(sha256, target))
            self._fetching[sha256] = task
            task.add_done_callback(lambda _: self._fetching.pop(sha256, None))
        return await asyncio.shield(task)

    async def _fetch(self, sha256: str, target: Path) -> Path | None:
        size = await self._db.fetchval("SELECT size FROM blobs WHERE sha256 = $1", sha256)
        if size is None:
            return None
        await self._download("SELECT data FROM blob_chunks WHERE sha256 = $1 ORDER BY seq",
                             sha256, target, size, sha256)
        self.fetched += 1
        return target

    async def recover(self, before: float = math.inf) -> int:
        """Remove the cache's partial downloads, which a crash of this node left (at start,
        nothing is downloading; the cache is this node's alone). A drop here sets nothing
        aside: the database's statement checks every node itself."""
        return await asyncio.to_thread(_remove_partial, self.root, before)

    async def drop(self, sha256: str, unused: Unused) -> bool:
        """``unused`` is not needed: the statement that drops the rows checks every node's
        documents and ingest jobs itself."""
        async with self._db.transaction() as conn:  # its chunks go with it (CASCADE)
            dropped = bool(await conn.fetchval(_DROP_UNUSED, sha256))
            stored = not dropped and await conn.fetchval(
                "SELECT true FROM blobs WHERE sha256 = $1", sha256)
        if stored:  # another node's document uses it after all: this copy stays good
            return False
        return await asyncio.to_thread(self.cache.remove, sha256) or dropped

    async def settled_before(self, before: float) -> list[str]:
        rows = await self._db.fetch("SELECT sha256 FROM blobs WHERE stored_at < $1",
                                    int(before * 1000))
        cached = await asyncio.to_thread(self.cache.settled, before)
        return sorted({row["sha256"] for row in rows} | set(cached))

    async def share_upload(self, source: Path, upload: SharedUpload) -> None:
        async with self._db.transaction() as conn:
            await conn.execute(
                "INSERT INTO uploads (name, sha256, size, stored_at) VALUES ($1, $2, $3, $4)",
                upload.name, upload.sha256, upload.size, _now_ms())
            await _write_chunks(conn, "INSERT INTO upload_chunks (name, seq, data) "
                                      "VALUES ($1, $2, $3)", upload.name, source)

    async def fetch_upload(self, upload: SharedUpload, target: Path) -> bool:
        size = await self._db.fetchval(
            "SELECT size FROM uploads WHERE name = $1 AND sha256 = $2",
            upload.name, upload.sha256)
        if size is None:
            return False
        # Not hashed here: the ingest job checks the file against its upload's hash.
        await self._download("SELECT data FROM upload_chunks WHERE name = $1 ORDER BY seq",
                             upload.name, target, size, None)
        return True

    async def drop_upload(self, name: str) -> None:
        await self._db.execute("DELETE FROM uploads WHERE name = $1", name)

    async def forget_uploads(self, keep: set[str], before: float) -> int:
        gone = await self._db.fetch(
            "DELETE FROM uploads WHERE stored_at < $1 AND NOT (name = ANY($2::text[])) "
            "RETURNING name", int(before * 1000), sorted(keep))
        return len(gone)

    async def _download(self, query: str, key: str, target: Path, size: int,
                        sha256: str | None) -> None:
        """Stream the chunks into a temporary file beside ``target``, check it, rename it
        in: a reader of ``target`` sees the whole file or none."""
        await asyncio.to_thread(target.parent.mkdir, parents=True, exist_ok=True)
        part = target.with_name(f"{target.name}.{secrets.token_hex(4)}{PART_SUFFIX}")
        sink = _Sink(await asyncio.to_thread(open, part, "xb"))
        try:
            async with self._db.transaction() as conn:
                async for row in conn.cursor(query, key, prefetch=_FETCH_AHEAD):
                    await asyncio.to_thread(sink.write, row["data"], sha256 is not None)
            await asyncio.to_thread(sink.close)
            if sink.size != size or (sha256 is not None and sink.hexdigest() != sha256):
                raise CorruptBlob(f"{key}: read {sink.size} bytes that do not match "
                                  f"the {size} bytes stored")
            await asyncio.to_thread(_rename_in, part, target)
        except BaseException:
            await asyncio.to_thread(sink.close)
            await asyncio.to_thread(part.unlink, True)
            raise


class _Sink:
    """A file being written, its size and hash so far."""

    def __init__(self, file: BinaryIO) -> None:
        self.file = file
        self.size = 0
        self._digest = hashlib.sha256()

    def write(self, data: bytes, hashed: bool) -> None:
        if hashed:
            self._digest.update(data)
        self.file.write(data)
        self.size += len(data)

    def close(self) -> None:
        if not self.file.closed:
            self.file.flush()
            os.fsync(self.file.fileno())
            self.file.close()

    def hexdigest(self) -> str:
        return self._digest.hexdigest()


async def _copy_shared_upload(conn: Connection, sha256: str, upload: str | None) -> bool:
    """Make the blob's chunks from the upload's, in the server (no bytes travel); False
    if that upload is not shared here (it was taken in before, or by a file store)."""
    if upload is None or not await conn.fetchval(
            "SELECT true FROM uploads WHERE name = $1 AND sha256 = $2", upload, sha256):
        return False
    await conn.execute(
        "INSERT INTO blob_chunks (sha256, seq, data) "
        "SELECT $1, seq, data FROM upload_chunks WHERE name = $2", sha256, upload)
    return True


async def _write_chunks(conn: Connection, insert: str, key: str, source: Path) -> None:
    """Insert the file's chunks in order, one statement each, reading off the loop."""
    file = await asyncio.to_thread(open, source, "rb")
    try:
        seq = 0
        while data := await asyncio.to_thread(file.read, CHUNK):
            await conn.execute(insert, key, seq, data)
            seq += 1
    finally:
        await asyncio.to_thread(file.close)


def _remove_partial(root: Path, before: float) -> int:
    removed = 0
    for part in root.glob("??/??/*" + PART_SUFFIX):
        with contextlib.suppress(FileNotFoundError):
            if part.stat().st_mtime < before:
                part.unlink()
                removed += 1
    return removed


def _rename_in(part: Path, target: Path) -> None:
    """Rename, then make the rename durable (the directory entry) where the platform can."""
    os.replace(part, target)
    with contextlib.suppress(OSError):
        fd = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _now_ms() -> int:
    return int(time.time() * 1000)
