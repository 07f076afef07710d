"""Integers as clients write them in query strings and times (``limit`` and the rest are
typed queries now: :mod:`.contract`)."""

from __future__ import annotations


def parse_int(text: str) -> int | None:
    """An optionally signed run of ASCII digits as an int; None for anything else.

    ``str.isdigit()`` alone is true for "²" or "①", which ``int()`` refuses (a 500 once),
    and ``int()`` alone takes " 5", "1_000" and other scripts' digits.
    """
    digits = text[1:] if text[:1] in "+-" else text
    return int(text) if digits.isascii() and digits.isdigit() else None
