"""An exclusive lock next to the database: held, it proves no other engine uses the file.

Then every lease left in the database belongs to a dead process and can be recovered at
start without waiting for it to expire (``kill -9`` and restart loses no time).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

try:
    import fcntl
except ImportError:  # pragma: no cover - not on Windows: leases then expire by time
    fcntl = None  # type: ignore[assignment]


class EngineLock:
    def __init__(self, db_path: Path) -> None:
        self.path = db_path.with_name(db_path.name + ".engine-lock")
        self._fd: int | None = None

    def __repr__(self) -> str:
        return f"<EngineLock {self.path} {'held' if self._fd is not None else 'free'}>"

    def acquire(self) -> bool:
        """Take the lock without waiting; False when another live process holds it."""
        if fcntl is None:
            return False  # type: ignore[unreachable]
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False
        self._fd = fd
        return True

    def release(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)  # closing drops the flock
            self._fd = None
