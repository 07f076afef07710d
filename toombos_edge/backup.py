"""Backups of a data dir while its server runs, and restoring one into a stopped data dir.

A backup is a directory::

    edge.db        SQLite's online backup of the database (a consistent snapshot; the
                   server goes on writing meanwhile), checked with integrity_check
    blobs/         the original of every document in that snapshot (blobs/ab/cd/<sha256>)
    uploads/       uploads that ingest jobs not yet ended will read
    templates/     template overrides, when there are any
    webhook.key    the generated webhook signing key, when there is one (receivers check it)

Not copied: the content cache (derived, rebuilt on demand), ``admin.key`` and
``ws-token.key`` (the keys themselves are in the database as hashes; WebSocket tokens are
short-lived and a new secret only logs out tokens in flight), and ``outbox/``. Blobs are
named by their hash and never change, so a blob already in the backup is not copied again:
backing up into the same directory again copies only what is new.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from .documents.blobs import is_sha256
from .errors import Conflict, EdgeError, NotFound, SchemaTooNew
from .store.sqlite.database import migrations
from .store.sqlite.engine_lock import EngineLock

DB_NAME = "edge.db"
SECRET_FILES = ("webhook.key",)
_SIDECARS = ("-wal", "-shm", "-journal")


@dataclass(frozen=True, slots=True)
class Copied:
    """What a backup or a restore wrote."""

    blobs: int = 0
    blob_bytes: int = 0
    blobs_missing: int = 0  #: referenced by the snapshot but gone from the source
    uploads: int = 0


def backup(data_dir: Path, target: Path) -> Copied:
    """Back ``data_dir`` up into the directory ``target`` (see the module's docstring)."""
    source_db = data_dir / DB_NAME
    if not source_db.exists():
        raise NotFound(f"no database at {source_db}")
    target.mkdir(parents=True, exist_ok=True)
    _snapshot(source_db, target / DB_NAME)
    with contextlib.closing(sqlite3.connect(target / DB_NAME)) as copy:
        blobs = [row[0] for row in copy.execute(
            "SELECT DISTINCT blob_sha256 FROM documents WHERE blob_sha256 IS NOT NULL")]
        uploads = [row[0] for row in copy.execute(
            "SELECT json_extract(params, '$.upload.name') FROM jobs WHERE kind = 'ingest' "
            "AND status IN ('pending', 'in_progress') "
            "AND json_extract(params, '$.upload.name') IS NOT NULL")]
    copied = _copy_blobs(data_dir / "blobs", target / "blobs", blobs)
    n_uploads = _copy_named(data_dir / "uploads", target / "uploads", uploads)
    _copy_extras(data_dir, target)
    return Copied(copied.blobs, copied.blob_bytes, copied.blobs_missing, n_uploads)


def restore(source: Path, data_dir: Path, *, force: bool = False) -> Copied:
    """Restore the backup directory ``source`` into ``data_dir``.

    Refused while a server runs on ``data_dir`` (it holds the engine lock), and over an
    existing database unless ``force``: then the database it replaces is moved to
    ``<data>/replaced-<time>/``, never deleted.
    """
    source_db = source / DB_NAME
    if not source_db.is_file():
        raise NotFound(f"no {DB_NAME} in {source}: not a backup directory")
    _check_backup(source_db)
    data_dir.mkdir(parents=True, exist_ok=True)
    lock = EngineLock(data_dir / DB_NAME)
    if not lock.acquire():
        raise Conflict(f"a server is running on {data_dir}: stop it first, then restore")
    try:
        _set_aside(data_dir, force)
        _copy_file(source_db, data_dir / DB_NAME)
        copied = _copy_blobs(source / "blobs", data_dir / "blobs", None)
        uploads = _copy_named(source / "uploads", data_dir / "uploads", None)
        if uploads:
            (data_dir / "uploads").chmod(0o700)
        _copy_extras(source, data_dir)
    finally:
        lock.release()
    return Copied(copied.blobs, copied.blob_bytes, copied.blobs_missing, uploads)


def _snapshot(source_db: Path, target_db: Path) -> None:
    partial = target_db.with_name(target_db.name + ".partial")
    partial.unlink(missing_ok=True)
    with contextlib.closing(sqlite3.connect(source_db)) as src, contextlib.closing(
        sqlite3.connect(partial)
    ) as dest:
        src.backup(dest)  # one step: a consistent snapshot; WAL lets the server write on
        verdict = dest.execute("PRAGMA integrity_check").fetchone()[0]
    if verdict != "ok":
        partial.unlink(missing_ok=True)
        raise EdgeError(f"the backup failed its integrity check: {verdict}")
    os.replace(partial, target_db)


def _check_backup(db: Path) -> None:
    """A sound file of a schema this version knows (apply_migrations refuses newer ones)."""
    try:
        with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
            verdict = conn.execute("PRAGMA integrity_check").fetchone()[0]
            version = conn.execute("PRAGMA user_version").fetchone()[0]
    except sqlite3.DatabaseError as exc:
        raise EdgeError(f"{db} is not a sound SQLite database: {exc}") from None
    if verdict != "ok":
        raise EdgeError(f"{db} failed its integrity check: {verdict}")
    latest = migrations()[-1][0]
    if version > latest:
        raise SchemaTooNew(f"the backup's schema version {version} is newer than this server "
                           f"knows ({latest}): restore it with the version that made it")


def _set_aside(data_dir: Path, force: bool) -> None:
    present = [data_dir / (DB_NAME + s) for s in ("", *_SIDECARS)]
    present = [path for path in present if path.exists()]
    if not present:
        return
    if not force:
        raise Conflict(f"{data_dir} already has a database: restore with --force to replace "
                       "it (it is moved aside, not deleted)")
    aside = data_dir / time.strftime("replaced-%Y%m%dT%H%M%S")
    aside.mkdir()
    for path in present:  # a WAL left beside a new file would be replayed into it
        os.replace(path, aside / path.name)


def _copy_blobs(source: Path, target: Path, wanted: list[str] | None) -> Copied:
    """Copy blobs (``wanted``, or all of them) not already in ``target``."""
    if wanted is None:
        found = source.glob("??/??/*") if source.is_dir() else []
        wanted = [p.name for p in found if is_sha256(p.name)]  # not a copy cut short
    copied = size = missing = 0
    for sha in wanted:
        relative = Path(sha[:2], sha[2:4], sha)
        if (target / relative).is_file():
            continue
        if not (source / relative).is_file():
            missing += 1  # its document was deleted after the snapshot
            continue
        size += _copy_file(source / relative, target / relative)
        copied += 1
    return Copied(copied, size, missing)


def _copy_named(source: Path, target: Path, names: list[str] | None) -> int:
    if not source.is_dir():
        return 0
    names = [p.name for p in source.iterdir() if p.is_file()] if names is None else names
    count = 0
    for name in names:
        if (source / name).is_file():
            _copy_file(source / name, target / name)
            count += 1
    return count


def _copy_extras(source: Path, target: Path) -> None:
    for name in SECRET_FILES:
        if (source / name).is_file():
            _copy_file(source / name, target / name)
            (target / name).chmod(0o600)
    if (source / "templates").is_dir():
        shutil.copytree(source / "templates", target / "templates", dirs_exist_ok=True)


def _copy_file(source: Path, target: Path) -> int:
    """Copy, fsync, then rename into place: ``target`` is whole or absent. Returns bytes."""
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    with source.open("rb") as src, partial.open("wb") as dest:
        shutil.copyfileobj(src, dest, 1 << 20)
        dest.flush()
        os.fsync(dest.fileno())
        size = dest.tell()
    os.replace(partial, target)
    return size
