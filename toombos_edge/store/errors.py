"""Which exceptions mean that a database file failed, for code that may not import sqlite3.

The content cache is diskcache, an SQLite file of its own: it recognises a damaged file
(throw it away and rebuild) apart from a busy or locked one (a miss, try again later)
without knowing the driver. The driver's exception types stay here, in ``store/``.
"""

from __future__ import annotations

import sqlite3


def is_database_error(exc: BaseException) -> bool:
    """Any error the database driver raised (damaged, busy, locked, misused)."""
    return isinstance(exc, sqlite3.Error)


def is_corruption(exc: BaseException) -> bool:
    """A damaged or foreign file, as opposed to a busy or locked one (``OperationalError``)."""
    return isinstance(exc, sqlite3.DatabaseError) and not isinstance(
        exc, sqlite3.OperationalError)


def is_unreadable(exc: BaseException) -> bool:
    """The file cannot be opened as a database at all, whatever the reason."""
    return isinstance(exc, sqlite3.DatabaseError)
