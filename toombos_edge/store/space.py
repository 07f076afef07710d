"""Running out of space: which failures mean it, and whether the last write hit it.

SQLite says ``SQLITE_FULL`` when the disk is full or the file reached ``max_page_count``;
the file system says ``ENOSPC`` (or ``EDQUOT``). Either becomes :class:`InsufficientStorage`
(507) for the request that tried to write; reads go on. Writes are never refused ahead:
each one tries, so the server recovers by itself once space is freed. The state only
reports: the health check clears it when it finds room again (a small write that fits
into a page already allocated says nothing about the next large one).
"""

from __future__ import annotations

import errno
import logging
import sqlite3
import time

from ..errors import InsufficientStorage

log = logging.getLogger(__name__)

SQLITE_FULL = 13
ROOM_BYTES = 4 << 20  #: free bytes on the disk that count as "space is back" after running out
_NO_SPACE = frozenset({errno.ENOSPC, errno.EDQUOT})


def is_no_space(exc: BaseException) -> bool:
    """True for an error that says the disk or the database's size limit is full."""
    if isinstance(exc, sqlite3.Error):
        code = getattr(exc, "sqlite_errorcode", None)
        return code is not None and code & 0xFF == SQLITE_FULL
    return isinstance(exc, OSError) and exc.errno in _NO_SPACE


class SpaceState:
    """The last write failure for lack of space, until a write succeeds again."""

    def __init__(self) -> None:
        self.reason: str | None = None
        self.since: float | None = None
        self.refusals = 0

    def __repr__(self) -> str:
        return f"<SpaceState {'full' if self.reason else 'ok'} refusals={self.refusals}>"

    def refuse(self, what: str, exc: BaseException) -> InsufficientStorage:
        """Record ``exc`` (a no-space failure of ``what``); returns the error to raise."""
        if self.reason is None:
            log.error("%s failed: no space left (%s); writes get 507 until space is freed",
                      what, exc)
            self.since = time.time()
        self.reason = f"{what}: {exc}"
        self.refusals += 1
        return InsufficientStorage(
            "the server is out of storage space: nothing was written; try again once an "
            "operator has freed space", {"reason": self.reason},
        )

    def wrote(self) -> None:
        """There is room again (the health check looked)."""
        if self.reason is not None:
            log.warning("writes succeed again after running out of space (%s)", self.reason)
            self.reason = self.since = None
