"""The activity file: JSON lines appended in batches, rotated by size.

Rotation renames ``activity.jsonl`` to ``activity.jsonl.1`` (the older ones shift up to
``.N``, the oldest beyond ``keep`` is removed) and creates a new ``activity.jsonl``, like
logrotate's ``create`` mode: a reader that follows the name (``tail -F``) always reads the
current file. Used from one thread only (the activity log's).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import BinaryIO


class JsonLines:
    """Append-only JSON lines at ``path``, at most ``max_bytes`` per file, ``keep`` old ones."""

    def __init__(self, path: Path, *, max_bytes: int, keep: int) -> None:
        self.path = path
        self._max_bytes = max_bytes
        self._keep = keep
        self._file: BinaryIO | None = None
        self._size = 0
        self.rotations = 0

    def __repr__(self) -> str:
        return f"<JsonLines {self.path} size={self._size} rotations={self.rotations}>"

    def write(self, lines: list[bytes]) -> None:
        """Append ``lines`` (each ending in a newline); rotates first when they would not fit."""
        chunk = b"".join(lines)
        if self._file is None:
            self._open()
        if self._size and self._size + len(chunk) > self._max_bytes:
            self._rotate()
        assert self._file is not None
        self._file.write(chunk)
        self._file.flush()  # to the OS at once: a crash of the process loses nothing written
        self._size += len(chunk)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def files(self) -> list[Path]:
        """The current file, then the rotated ones, newest first (those that exist)."""
        names = [self.path, *(self._rotated(n) for n in range(1, self._keep + 1))]
        return [name for name in names if name.exists()]

    def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.path, "ab")  # noqa: SIM115 - held open across batches
        self._size = self._file.tell()

    def _rotate(self) -> None:
        self.close()
        if self._keep == 0:
            self.path.unlink(missing_ok=True)
        else:
            self._rotated(self._keep).unlink(missing_ok=True)
            for n in range(self._keep - 1, 0, -1):
                older = self._rotated(n)
                if older.exists():
                    os.replace(older, self._rotated(n + 1))
            os.replace(self.path, self._rotated(1))
        self.rotations += 1
        self._open()

    def _rotated(self, n: int) -> Path:
        return self.path.with_name(f"{self.path.name}.{n}")
