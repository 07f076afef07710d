"""The schema of the SQLite file: numbered migrations, the per-connection settings, and the
incremental vacuum that lets pruning give space back to the file system."""

from __future__ import annotations

import logging
import sqlite3
from importlib import resources

from ...errors import SchemaTooNew

log = logging.getLogger(__name__)


def migrations() -> list[tuple[int, str, str]]:
    """(number, name, SQL) of each migration shipped with the package, in order."""
    folder = resources.files(__package__).joinpath("migrations")
    found = []
    for entry in folder.iterdir():
        name = entry.name
        if name.endswith(".sql") and name[:4].isdigit():
            found.append((int(name[:4]), name, entry.read_text(encoding="utf-8")))
    return sorted(found)


def apply_migrations(conn: sqlite3.Connection) -> int:
    """Bring the schema up to date; refuse a file written by newer code. Returns the version."""
    current: int = conn.execute("PRAGMA user_version").fetchone()[0]
    shipped = migrations()
    latest = shipped[-1][0] if shipped else 0
    if current > latest:
        raise SchemaTooNew(
            f"database schema version {current} is newer than this server knows ({latest}); "
            "upgrade toombos-edge or restore a backup"
        )
    for number, name, sql in shipped:
        if number <= current:
            continue
        log.info("applying migration %s", name)
        conn.executescript(f"BEGIN IMMEDIATE;\n{sql}\nPRAGMA user_version = {number};\nCOMMIT;")
    return max(current, latest)


def switch_to_incremental_vacuum(conn: sqlite3.Connection) -> bool:
    """Make freed pages returnable to the file system (``PRAGMA incremental_vacuum``).

    A new file takes the setting before its first table. A file made before it needs one
    VACUUM, which rewrites the whole file (about as long as copying it, and as much free
    disk again while it runs), once. Returns True when it ran that VACUUM.
    """
    if conn.execute("PRAGMA auto_vacuum").fetchone()[0] == 2:
        return False
    conn.execute("PRAGMA auto_vacuum = INCREMENTAL")
    if conn.execute("PRAGMA auto_vacuum").fetchone()[0] == 2:
        return False  # a new file: no table yet, so nothing to rewrite
    log.warning("rewriting %s once (VACUUM) so that pruning can shrink it",
                conn.execute("PRAGMA database_list").fetchone()[2])
    conn.execute("VACUUM")
    return True


def vacuum_pages(conn: sqlite3.Connection, pages: int) -> int:
    """Give up to ``pages`` free pages back to the file system; returns how many went.

    Each step of ``PRAGMA incremental_vacuum`` frees one page, and Python's sqlite3 steps a
    statement without result columns once per ``execute``: hence one execute per page.
    """
    before: int = conn.execute("PRAGMA freelist_count").fetchone()[0]
    cursor = conn.cursor()
    try:
        for _ in range(min(pages, before)):
            cursor.execute("PRAGMA incremental_vacuum(1)")
    finally:
        cursor.close()
    after: int = conn.execute("PRAGMA freelist_count").fetchone()[0]
    return before - after


def configure(conn: sqlite3.Connection, synchronous: str) -> None:
    """The settings every connection of the file takes (the writer's and the readers')."""
    conn.execute("PRAGMA auto_vacuum = INCREMENTAL")  # only a new file takes it here
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute(f"PRAGMA synchronous = {'FULL' if synchronous == 'full' else 'NORMAL'}")
    conn.execute("PRAGMA busy_timeout = 5000")
    conn.execute("PRAGMA foreign_keys = ON")
