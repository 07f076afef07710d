"""Full-text search over documents (SQLite FTS5): ranked hits with highlighted snippets.

Queries use FTS5 syntax (``"exact phrase"``, ``AND``/``OR``/``NOT``, ``prefix*``,
``title:word``); ``mode="plain"`` quotes every word instead, so any text is a valid query.
Snippets are HTML: the document's text escaped, the matches in ``<mark>``.
"""

from __future__ import annotations

import html
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..errors import Invalid
from ..events import QUERY_COMPLETE, Event, EventBus
from ..records.document import Document
from ..store import Database
from . import repository

# Private-use characters mark the matches, so the text can be escaped before <mark> is added.
_OPEN, _CLOSE = "\ue000", "\ue001"
MAX_QUERY_CHARS = 1000
EVENT_QUERY_CHARS = 100
_SYNTAX_HINTS = ("fts5:", "syntax error", "no such column", "unterminated", "unknown special")


@dataclass(frozen=True, slots=True)
class Hit:
    document: Document
    score: float
    title: str  #: HTML, matches in <mark>
    snippet: str  #: HTML, matches in <mark>

    def to_json(self) -> dict[str, Any]:
        return {
            **self.document.to_json(with_text=False),
            "score": round(self.score, 6),
            "title_highlighted": self.title,
            "snippet": self.snippet,
        }


@dataclass(frozen=True, slots=True)
class SearchPage:
    query: str
    hits: list[Hit]
    total: int
    latency_ms: float


def as_html(marked: str) -> str:
    return html.escape(marked, quote=False).replace(_OPEN, "<mark>").replace(_CLOSE, "</mark>")


def plain_query(text: str) -> str:
    """Every word as a quoted FTS5 string: all must occur, no operator is special."""
    return " ".join('"' + word.replace('"', '""') + '"' for word in text.split())


class SearchService:
    """Runs searches on a reader connection and publishes ``query_complete`` for each."""

    def __init__(
        self, db: Database, bus: EventBus, *, clock: Callable[[], float] = time.perf_counter
    ) -> None:
        self.db = db
        self.bus = bus
        self._clock = clock
        self.queries = 0

    def __repr__(self) -> str:
        return f"<SearchService queries={self.queries}>"

    async def search(
        self, query: str, *, limit: int = 20, offset: int = 0, mode: str = "fts"
    ) -> SearchPage:
        """Best matches first; ``Invalid`` (422) for empty or malformed queries."""
        query = query.strip()
        if not query:
            raise Invalid("q: the search query is empty", {"field": "q"})
        if len(query) > MAX_QUERY_CHARS:
            raise Invalid(f"q: the search query is longer than {MAX_QUERY_CHARS} characters",
                          {"field": "q"})
        match = plain_query(query) if mode == "plain" else query
        started = self._clock()
        rows, total = await self._run(match, limit, offset)
        latency_ms = round((self._clock() - started) * 1000, 3)
        hits = [Hit(doc, score, as_html(title), as_html(snip)) for doc, score, title, snip in rows]
        self.queries += 1
        self.bus.publish(Event.data(QUERY_COMPLETE, {
            "query": query[:EVENT_QUERY_CHARS],
            "truncated": len(query) > EVENT_QUERY_CHARS,
            "hits": total,
            "latency_ms": latency_ms,
        }))
        return SearchPage(query, hits, total, latency_ms)

    async def _run(
        self, match: str, limit: int, offset: int
    ) -> tuple[list[tuple[Document, float, str, str]], int]:
        try:
            return await self.db.read(
                lambda conn: repository.search(conn, match, limit, offset, (_OPEN, _CLOSE))
            )
        except sqlite3.OperationalError as exc:
            message = str(exc)
            if not any(hint in message for hint in _SYNTAX_HINTS):
                raise
            raise Invalid(
                f"bad search syntax: {message}",
                {"field": "q", "query": match, "hint": "quote words with special characters, "
                 "or send mode=plain to search for the words as written"},
            ) from None
