"""Backups of a data dir while its server runs, and restoring one into a stopped data dir.

A backup is a directory::

    edge.db        the database's copy (store/sqlite/backup.py: SQLite's online backup, a
                   consistent snapshot while the server writes on), checked
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

import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from .documents.blobs import is_sha256
from .errors import Conflict
from .store.backup import DatabaseCopies

SECRET_FILES = ("webhook.key",)


@dataclass(frozen=True, slots=True)
class Copied:
    """What a backup or a restore wrote."""

    blobs: int = 0
    blob_bytes: int = 0
    blobs_missing: int = 0  #: referenced by the snapshot but gone from the source
    uploads: int = 0


def backup(data_dir: Path, target: Path, db: DatabaseCopies) -> Copied:
    """Back ``data_dir`` up into the directory ``target`` (see the module's docstring)."""
    found = db.snapshot(data_dir, target)
    copied = _copy_blobs(data_dir / "blobs", target / "blobs", found.blobs)
    n_uploads = _copy_named(data_dir / "uploads", target / "uploads", found.uploads)
    _copy_extras(data_dir, target)
    return Copied(copied.blobs, copied.blob_bytes, copied.blobs_missing, n_uploads)


def restore(source: Path, data_dir: Path, db: DatabaseCopies, *, force: bool = False
            ) -> Copied:
    """Restore the backup directory ``source`` into ``data_dir``.

    Refused while a server runs on ``data_dir`` (it holds the engine lock), and over an
    existing database unless ``force``: then the database it replaces is moved to
    ``<data>/replaced-<time>/``, never deleted.
    """
    db.check(source)
    copy, live = db.copy_of(source, data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    with db.no_server_on(live) as free:
        if not free:
            raise Conflict(f"a server is running on {data_dir}: stop it first, then restore")
        _set_aside(data_dir, db.files(data_dir), force)
        _copy_file(copy, live)
        copied = _copy_blobs(source / "blobs", data_dir / "blobs", None)
        uploads = _copy_named(source / "uploads", data_dir / "uploads", None)
        if uploads:
            (data_dir / "uploads").chmod(0o700)
        _copy_extras(source, data_dir)
    return Copied(copied.blobs, copied.blob_bytes, copied.blobs_missing, uploads)


def _set_aside(data_dir: Path, present: list[Path], force: bool) -> None:
    if not present:
        return
    if not force:
        raise Conflict(f"{data_dir} already has a database: restore with --force to replace "
                       "it (it is moved aside, not deleted)")
    aside = data_dir / time.strftime("replaced-%Y%m%dT%H%M%S")
    aside.mkdir()
    for path in present:
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
