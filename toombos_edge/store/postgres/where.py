"""A WHERE clause built term by term, each parameter numbered as asyncpg's ``$n``."""

from __future__ import annotations

from typing import Any


class Where:
    """``add("kind = ?", kind)`` numbers the ``?`` after the parameters before it; ``str()``
    is ``WHERE a AND b`` (empty without terms); ``params`` go to ``fetch`` in order."""

    def __init__(self) -> None:
        self.terms: list[str] = []
        self.params: list[Any] = []

    def __repr__(self) -> str:
        return f"<Where {' AND '.join(self.terms)!r} params={len(self.params)}>"

    def __str__(self) -> str:
        return "WHERE " + " AND ".join(self.terms) if self.terms else ""

    def param(self, value: Any) -> str:
        """Add a parameter; returns its placeholder, for a term that uses it more than once."""
        self.params.append(value)
        return f"${len(self.params)}"

    def add(self, sql: str, value: Any) -> None:
        """A term with one ``?``, bound to ``value``."""
        if sql.count("?") != 1:  # another would be left unbound, or bound twice
            raise ValueError(f"a term takes exactly one ?: {sql!r}")
        self.terms.append(sql.replace("?", self.param(value)))

    def raw(self, sql: str) -> None:
        """A term without a parameter of its own (or with placeholders from :meth:`param`)."""
        self.terms.append(sql)
