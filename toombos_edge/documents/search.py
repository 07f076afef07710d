"""Full-text search over documents: ranked hits with highlighted snippets.

Queries use the store's query language (``"exact phrase"``, ``AND``/``OR``/``NOT``,
``prefix*``, ``title:word``: see :mod:`toombos_edge.store.documents`); ``mode="plain"``
takes every word as written instead, so any text is a valid query. Snippets are HTML: the
document's text escaped, the matches in ``<mark>``.
"""

from __future__ import annotations

import html
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..errors import Invalid
from ..events import QUERY_COMPLETE, Event, EventBus
from ..records.document import Document
from ..store.documents import MARK_CLOSE, MARK_OPEN, BadQuery, DocumentStore, Match, TextQuery

MAX_QUERY_CHARS = 1000
EVENT_QUERY_CHARS = 100


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
    """The store's marked text as HTML: escaped first, then the marks become ``<mark>``."""
    escaped = html.escape(marked, quote=False)
    return escaped.replace(MARK_OPEN, "<mark>").replace(MARK_CLOSE, "</mark>")


class SearchService:
    """Runs searches in the documents' store and publishes ``query_complete`` for each."""

    def __init__(
        self, store: DocumentStore, bus: EventBus, *,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.store = store
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
        started = self._clock()
        matches, total = await self._run(TextQuery(query, plain=mode == "plain"), limit, offset)
        latency_ms = round((self._clock() - started) * 1000, 3)
        hits = [Hit(m.document, m.score, as_html(m.title), as_html(m.snippet)) for m in matches]
        self.queries += 1
        self.bus.publish(Event.data(QUERY_COMPLETE, {
            "query": query[:EVENT_QUERY_CHARS],
            "truncated": len(query) > EVENT_QUERY_CHARS,
            "hits": total,
            "latency_ms": latency_ms,
        }))
        return SearchPage(query, hits, total, latency_ms)

    async def _run(
        self, query: TextQuery, limit: int, offset: int
    ) -> tuple[list[Match], int]:
        try:
            return await self.store.search(query, limit=limit, offset=offset)
        except BadQuery as exc:
            raise Invalid(
                f"bad search syntax: {exc}",
                {"field": "q", "query": query.text, "hint": "quote words with special "
                 "characters, or send mode=plain to search for the words as written"},
            ) from None
