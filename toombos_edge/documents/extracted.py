"""What an extractor gives back: the text of a document, its title, and how it was cut.

Every reader of a format raises ``ExtractionError`` for bad input (never anything else) and
collects its text through a ``TextBudget``, so no format keeps more than the setting allows.
"""

from __future__ import annotations

from dataclasses import dataclass


class ExtractionError(Exception):
    """The file cannot be turned into text (unsupported, corrupt, undecodable, too big)."""

    def __init__(self, message: str, fmt: str | None = None) -> None:
        super().__init__(message)
        #: The format the file was taken for, when known (the document keeps it).
        self.format = fmt


@dataclass(frozen=True, slots=True)
class Extracted:
    format: str
    title: str | None
    text: str
    encoding: str | None = None
    truncated: bool = False
    pages: int | None = None
    #: Why there is no text (the file is kept all the same); None when extraction ran.
    error: str | None = None


def tidy(text: str) -> str:
    """Runs of spaces inside lines collapsed, blank lines dropped."""
    lines = (" ".join(line.split()) for line in text.splitlines())
    return "\n".join(line for line in lines if line)


class TextBudget:
    """Blocks of text gathered until ``max_bytes`` (UTF-8); the block that passes it is cut.

    ``add`` answers False once the budget is spent, so a reader can stop early instead of
    walking the rest of a large document for nothing.
    """

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.size = 0
        self.truncated = False
        self._parts: list[str] = []

    def __repr__(self) -> str:
        return f"<TextBudget {self.size}/{self.max_bytes} parts={len(self._parts)}>"

    def add(self, block: str, separator: str = "\n\n") -> bool:
        """Append a block (after ``separator`` unless it is the first); False once full."""
        if self.truncated:
            return False
        block = tidy(block)
        if not block:
            return True
        if self._parts:
            block = separator + block
        cost = len(block.encode("utf-8", errors="replace"))
        if self.size + cost > self.max_bytes:
            room = self.max_bytes - self.size
            cut = block.encode("utf-8", errors="replace")[:room].decode("utf-8", "ignore")
            if cut.strip():
                self._parts.append(cut)
            self.size, self.truncated = self.max_bytes, True
            return False
        self._parts.append(block)
        self.size += cost
        return True

    def text(self) -> str:
        return "".join(self._parts)
