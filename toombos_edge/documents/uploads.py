"""Uploads streamed to a temporary file in the data dir while their SHA-256 is computed.

The bytes never sit in memory whole: chunks gather into a buffer of ``FLUSH_BYTES`` that a
worker thread hashes and writes while the event loop reads the next one (hashlib releases
the GIL on large buffers, so the two overlap). At most one buffer is in flight and one
gathering, whatever the upload's size. Past the limit the upload stops with
``PayloadTooLarge`` and its file is removed. A finished upload is fsynced and renamed from
``*.part`` to its final name, so a crash leaves only ``*.part`` files, swept at start.

In a directory several nodes share, a node starting must not sweep another's upload in
progress, or finished and about to become a job: there only files unchanged for
``SHARED_GRACE_SECONDS`` are swept. Nor is a shared directory ever created: a share that
is not mounted would leave each node writing to a folder of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import re
import secrets
import time
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from ..errors import Invalid, PayloadTooLarge, SettingsError
from ..store.blobs import PART_SUFFIX
from ..store.space import SpaceState, is_no_space

FLUSH_BYTES = 1 << 20
#: Where nodes share uploads (a shared directory, or the database): how long one must be
#: unchanged before a node's sweep takes it. The node that took it in commits its job
#: moments after; a ``*.part`` file being streamed changes all the time.
SHARED_GRACE_SECONDS = 3600.0
MAX_FILENAME_CHARS = 200
_UPLOAD_NAME_RE = re.compile(r"^up_[0-9a-f]{32}$")


def safe_filename(raw: str | None, default: str = "upload") -> str:
    """A display name that is safe anywhere: no path, no NUL or control characters.

    Only the last path component is kept (``/`` and ``\\`` both count), leading dots are
    dropped (no hidden files, no ``..``), whitespace runs become one space. The name is
    never used as a path on this server (files are named by random ids and hashes); it is
    kept for the document and for ``Content-Disposition``.
    """
    name = (raw or "").replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if unicodedata.category(ch)[0] != "C")
    name = " ".join(name.split()).lstrip(". ").strip()
    return name[:MAX_FILENAME_CHARS] or default


@dataclass(frozen=True, slots=True)
class Upload:
    """A complete upload waiting in the uploads folder for its ingest job."""

    name: str  #: file name inside the uploads folder (``up_<hex>``)
    sha256: str
    size: int
    filename: str  #: the client's file name, sanitized
    content_type: str

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "sha256": self.sha256,
            "size": self.size,
            "filename": self.filename,
            "content_type": self.content_type,
        }

    @classmethod
    def from_json(cls, data: Any) -> Upload:
        """Parse a job's ``upload`` parameter; ``Invalid`` if it is not one of ours."""
        if not isinstance(data, dict):
            raise Invalid("'upload' must be an object")
        try:
            upload = cls(
                str(data["name"]), str(data["sha256"]), int(data["size"]),
                safe_filename(str(data["filename"])), str(data["content_type"]),
            )
        except (KeyError, TypeError, ValueError):
            raise Invalid("'upload' needs name, sha256, size, filename, content_type") from None
        if not _UPLOAD_NAME_RE.match(upload.name):
            raise Invalid("'upload.name' is not an upload of this server")
        return upload


class UploadFolder:
    """The data dir's ``uploads/`` folder: where uploads wait for their ingest job."""

    def __init__(self, root: Path, space: SpaceState | None = None, *,
                 shared: bool = False) -> None:
        self.root = root
        #: Where a write that found the disk full is recorded (the database's, in the app).
        self.space = space or SpaceState()
        self.shared = shared  #: in a directory several nodes mount
        #: How long a file must be unchanged before a sweep takes it.
        self.settle_seconds = SHARED_GRACE_SECONDS if shared else 0.0

    def prepare(self) -> int:
        """Create the folder and remove ``*.part`` files left by a crash; returns how many.
        ``SettingsError`` when the shared directory it is in does not exist."""
        try:
            self.root.mkdir(mode=0o700, parents=not self.shared, exist_ok=True)
        except FileNotFoundError:
            raise SettingsError(f"TOOMBOS_SHARED_DIR: {self.root.parent} does not exist "
                                "(is the share mounted?)") from None
        swept = 0
        before = time.time() - self.settle_seconds
        for leftover in self.root.glob("*" + PART_SUFFIX):
            if self._settled(leftover, before):
                leftover.unlink(missing_ok=True)
                swept += 1
        return swept

    def sweep(self, keep: set[str]) -> int:
        """Remove finished uploads that no job will read (its job was cancelled before it
        ran, or the process died between the upload and the job's commit)."""
        removed = 0
        before = time.time() - self.settle_seconds
        for path in self.root.iterdir():
            if (_UPLOAD_NAME_RE.match(path.name) and path.name not in keep
                    and self._settled(path, before)):
                path.unlink(missing_ok=True)
                removed += 1
        return removed

    def _settled(self, path: Path, before: float) -> bool:
        """Unchanged since ``before`` (always, in a folder of this node's own): last
        written then, as a finished upload is renamed a moment after its last write."""
        if not self.settle_seconds:
            return True
        try:
            return path.stat().st_mtime < before
        except FileNotFoundError:
            return False

    def path(self, name: str) -> Path:
        if not _UPLOAD_NAME_RE.match(name):
            raise ValueError(f"not an upload name: {name!r}")
        return self.root / name

    def sink(self, limit: int, filename: str, content_type: str) -> UploadSink:
        return UploadSink(self, limit, filename, content_type)


class UploadSink:
    """One upload in progress: ``await write(chunk)`` …, then ``finish()`` or ``abort()``."""

    def __init__(self, folder: UploadFolder, limit: int, filename: str, content_type: str):
        self.name = "up_" + secrets.token_hex(16)
        self.limit = limit
        self.filename = filename
        self.content_type = content_type
        self.size = 0
        self._folder = folder
        self._part = folder.root / (self.name + PART_SUFFIX)
        self._digest = hashlib.sha256()
        self._file: BinaryIO | None = None
        self._buffer: list[bytes] = []
        self._buffered = 0
        self._pending: asyncio.Future[None] | None = None

    def __repr__(self) -> str:
        return f"<UploadSink {self.name} size={self.size} limit={self.limit}>"

    async def write(self, chunk: bytes) -> None:
        """Take the next chunk; ``PayloadTooLarge`` once the total passes the limit."""
        self.size += len(chunk)
        if self.size > self.limit:
            raise PayloadTooLarge(
                f"upload is larger than the limit of {self.limit // (1 << 20)} MiB",
                {"limit_bytes": self.limit},
            )
        self._buffer.append(chunk)
        self._buffered += len(chunk)
        if self._buffered >= FLUSH_BYTES:
            await self._flush()

    async def finish(self) -> Upload:
        """Write the rest, fsync, and give the upload its final name."""
        await self._flush()
        await self._drain()
        try:
            await asyncio.get_running_loop().run_in_executor(None, self._close_and_rename)
        except OSError as exc:
            raise self._refusal(exc) from None
        return Upload(
            self.name, self._digest.hexdigest(), self.size, self.filename, self.content_type
        )

    async def abort(self) -> None:
        """Stop and remove whatever was written."""
        with contextlib.suppress(Exception):
            await self._drain()
        await asyncio.get_running_loop().run_in_executor(None, self._discard)

    async def _flush(self) -> None:
        await self._drain()
        if not self._buffer:
            return
        data = self._buffer[0] if len(self._buffer) == 1 else b"".join(self._buffer)
        self._buffer, self._buffered = [], 0
        loop = asyncio.get_running_loop()
        self._pending = loop.run_in_executor(None, self._write_blocking, data)

    async def _drain(self) -> None:
        pending, self._pending = self._pending, None
        if pending is not None:
            try:
                await pending
            except OSError as exc:
                raise self._refusal(exc) from None

    def _refusal(self, exc: OSError) -> Exception:
        """The disk is full: 507 (InsufficientStorage); any other I/O error as it is."""
        return self._folder.space.refuse("an upload", exc) if is_no_space(exc) else exc

    def _write_blocking(self, data: bytes) -> None:
        if self._file is None:
            self._file = open(self._part, "xb")  # noqa: SIM115 (closed in finish/abort)
        self._digest.update(data)
        self._file.write(data)

    def _close_and_rename(self) -> None:
        if self._file is None:
            self._file = open(self._part, "xb")  # noqa: SIM115 (an empty upload)
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        os.replace(self._part, self._folder.path(self.name))

    def _discard(self) -> None:
        if self._file is not None:
            self._file.close()
        self._part.unlink(missing_ok=True)
