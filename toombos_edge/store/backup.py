"""The protocol of database copies for backups (``toombos-edge backup`` / ``restore``).

A backup directory holds the database's copy beside the files it refers to (blobs,
waiting uploads); ``backup.py`` copies those files, a backend copies the database. The
copy must be consistent while the server goes on writing, and checked before it is used.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Referenced:
    """The files a database copy refers to, to be copied beside it."""

    blobs: list[str]  #: the sha256 of every document's original
    uploads: list[str]  #: the upload names that ingest jobs not yet ended will read


class DatabaseCopies(Protocol):
    """Makes, checks and puts back copies of the database (blocking: a CLI's work)."""

    def snapshot(self, data_dir: Path, target_dir: Path) -> Referenced:
        """Copy the database of ``data_dir`` into ``target_dir``: one consistent snapshot
        while the server writes on, verified, replacing any older copy there only once
        whole. Returns what the snapshot refers to. ``NotFound`` if there is no database;
        ``EdgeError`` if the copy fails its check."""
        ...

    def check(self, backup_dir: Path) -> None:
        """Raise unless ``backup_dir`` holds a sound copy of a schema this version knows
        (``NotFound``: no copy; ``SchemaTooNew``: made by a newer version)."""
        ...

    def files(self, data_dir: Path) -> list[Path]:
        """The files of the database now in ``data_dir`` (none: there is none); a restore
        moves them aside, all together, before it puts a copy in their place."""
        ...

    def copy_of(self, backup_dir: Path, data_dir: Path) -> tuple[Path, Path]:
        """Where the copy is in ``backup_dir`` and where it goes in ``data_dir``."""
        ...

    def no_server_on(self, database: Path) -> AbstractContextManager[bool]:
        """While held: whether no server uses ``database`` (none can start on it meanwhile)."""
        ...
