"""An activity line as stored, its id scheme, and the filter the log is read with.

A line's id is its time: ``ms << SEQ_BITS | n`` (:class:`LineIds`), so ``since``/``until``
are an id range on the primary key and every filter walks one index backwards from the
cursor. The ids are ours, made by the server that writes the line; nodes sharing one
database make them independently, so a store numbers a batch above the ids already stored
(:func:`above`): an id is unique and in commit order, and at most a little later than its
line's time, never earlier.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

SEQ_BITS = 10
#: One line: id, type, actor id (None: the server), target, and the line itself (JSON).
Row = tuple[int, str, str | None, str | None, str]


class LineIds:
    """Increasing ids from millisecond times (a clock step back never reuses an id)."""

    def __init__(self, last: int = 0) -> None:
        self.last = last

    def next(self, ms: int) -> int:
        ident = max(ms << SEQ_BITS, self.last + 1)
        self.last = ident
        return ident


def above(rows: Sequence[Row], top: int) -> Sequence[Row]:
    """``rows`` (ids increasing, as :class:`LineIds` makes them) numbered above ``top``, the
    largest id stored: as they are when the first is above it (one node: always, at the
    cost of one comparison), else each moved just past the one before."""
    if not rows or rows[0][0] > top:
        return rows
    moved: list[Row] = []
    last = top
    for row in rows:
        last = max(row[0], last + 1)
        moved.append((last, *row[1:]))
    return moved


def first_id(ms: int) -> int:
    """The smallest id a line of millisecond ``ms`` can have."""
    return ms << SEQ_BITS


@dataclass(frozen=True, slots=True)
class ActivityFilter:
    types: tuple[str, ...] = ()
    actor: str | None = None  #: a key id, an IP, or "system"
    target: str | None = None
    since: int | None = None  #: ms, inclusive
    until: int | None = None  #: ms, inclusive
