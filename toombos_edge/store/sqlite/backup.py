"""Copies of the SQLite file: SQLite's online backup, checked with ``integrity_check``."""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path

from ...errors import EdgeError, NotFound, SchemaTooNew
from ..backup import Referenced
from .database import migrations
from .engine_lock import EngineLock

DB_NAME = "edge.db"
_SIDECARS = ("-wal", "-shm", "-journal")


def snapshot(source_db: Path, target_db: Path) -> None:
    """Copy ``source_db`` to ``target_db`` in one step, checked, renamed into place."""
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


def referenced(db: Path) -> Referenced:
    """The blobs and waiting uploads the database file ``db`` refers to."""
    with contextlib.closing(sqlite3.connect(db)) as copy:
        blobs = [row[0] for row in copy.execute(
            "SELECT DISTINCT blob_sha256 FROM documents WHERE blob_sha256 IS NOT NULL")]
        uploads = [row[0] for row in copy.execute(
            "SELECT json_extract(params, '$.upload.name') FROM jobs WHERE kind = 'ingest' "
            "AND status IN ('pending', 'in_progress') "
            "AND json_extract(params, '$.upload.name') IS NOT NULL")]
    return Referenced(blobs, uploads)


def check(db: Path) -> None:
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


class SqliteCopies:
    """:class:`~toombos_edge.store.backup.DatabaseCopies` of ``<data>/edge.db``."""

    def __repr__(self) -> str:
        return "<SqliteCopies>"

    def snapshot(self, data_dir: Path, target_dir: Path) -> Referenced:
        source_db = data_dir / DB_NAME
        if not source_db.exists():
            raise NotFound(f"no database at {source_db}")
        target_dir.mkdir(parents=True, exist_ok=True)
        snapshot(source_db, target_dir / DB_NAME)
        return referenced(target_dir / DB_NAME)

    def check(self, backup_dir: Path) -> None:
        copy = backup_dir / DB_NAME
        if not copy.is_file():
            raise NotFound(f"no {DB_NAME} in {backup_dir}: not a backup directory")
        check(copy)

    def files(self, data_dir: Path) -> list[Path]:
        # A WAL left beside a new file would be replayed into it: its sidecars go too.
        present = [data_dir / (DB_NAME + suffix) for suffix in ("", *_SIDECARS)]
        return [path for path in present if path.exists()]

    def copy_of(self, backup_dir: Path, data_dir: Path) -> tuple[Path, Path]:
        return backup_dir / DB_NAME, data_dir / DB_NAME

    @contextlib.contextmanager
    def no_server_on(self, database: Path) -> Iterator[bool]:
        lock = EngineLock(database)
        held = lock.acquire()
        try:
            yield held
        finally:
            if held:
                lock.release()
