"""The documents' query language (:mod:`toombos_edge.store.documents`) as a ``tsquery``.

The language is FTS5's, so that both backends accept and refuse the same queries: a
sequence of phrases is an implicit AND that binds tightest (``a b OR c`` is ``(a b) OR c``),
then ``NOT`` (binary: ``a NOT b``), ``AND``, ``OR``, each left-associative; a phrase is a
bareword (ASCII letters, digits, ``_``, any non-ASCII character) or a ``"quoted string"``
(``""`` for a quote), joined by ``+``, each with an optional ``*`` for a prefix; a column
filter (``title:``, ``body:``, ``-title:``, ``{title body}:``) applies to one phrase or to a
parenthesised expression. Anything else is a :class:`BadQuery` saying where. ``NEAR(…)``
and ``^`` (FTS5's proximity groups and first-token anchor, not part of the documented
language) have no ``tsquery`` equivalent and are refused by name.

The result is ``to_tsquery`` input: every string goes in quoted, so PostgreSQL's own
parser splits it into lexemes exactly as it did the indexed text (a quoted string of several
words is a phrase, ``<->``); a column is a weight (the title is ``A``, the body ``B``, as the
generated ``search`` column weighs them). A string that holds no word (``"-"``) drops out
as FTS5 drops an empty phrase (see :data:`Part`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..documents import BadQuery

#: Columns of the query language and the weight each has in ``documents.search``.
COLUMN_WEIGHTS = {"title": "A", "body": "B"}
_ALL = frozenset(COLUMN_WEIGHTS.values())
_OPERATORS = frozenset({"AND", "OR", "NOT"})
_SPACE = " \t\n\r\f\v"
_LAST_WORD = re.compile(r"([^\W_]+)[\W_]*$")  #: the last word, as the tokenizers split
_A_WORD = re.compile(r"[^\W_]")  #: a letter or digit: what both tokenizers keep
_PIECES = re.compile(r"[^\W_]+")  #: the runs of letters and digits of a word
#: Matches nothing: ``to_tsquery`` of a string without words is the empty query.
NOTHING = "' '"

#: A piece of ``to_tsquery`` text, or None for an expression without words (FTS5's empty
#: phrase), which FTS5 evaluates so: it drops out of a sequence, an OR and a phrase; an
#: explicit AND with it is None; so is a NOT whose left side is None; a NOT of it keeps
#: its left side; a query that is None finds nothing.
Part = str | None


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str  #: "word", "string" (quoted), or the punctuation itself
    text: str
    at: int  #: offset in the query, for messages


def _bareword_char(ch: str) -> bool:
    return not ch.isascii() or ch.isalnum() or ch in "_\x1a"


def _tokens(query: str) -> list[_Token]:
    out: list[_Token] = []
    i = 0
    while i < len(query):
        ch = query[i]
        if ch in _SPACE:
            i += 1
        elif ch == '"':
            i = _quoted(query, i, out)
        elif _bareword_char(ch):
            start = i
            while i < len(query) and _bareword_char(query[i]):
                i += 1
            out.append(_Token("word", query[start:i], start))
        elif ch in "():*+-{}^":
            out.append(_Token(ch, ch, i))
            i += 1
        else:
            raise BadQuery(f"syntax error near {ch!r} at character {i + 1}")
    return out


def _quoted(query: str, start: int, out: list[_Token]) -> int:
    text: list[str] = []
    i = start + 1
    while i < len(query):
        if query[i] == '"':
            if query[i + 1:i + 2] != '"':
                out.append(_Token("string", "".join(text), start))
                return i + 1
            i += 1
        text.append(query[i])
        i += 1
    raise BadQuery(f"unterminated string at character {start + 1}")


def _lexeme(text: str, flags: str) -> str:
    """One quoted ``to_tsquery`` operand (backslash and quote escaped)."""
    quoted = "'" + text.replace("\\", "\\\\").replace("'", "''") + "'"
    return f"{quoted}:{flags}" if flags else quoted


def _joined(parts: list[Part], operator: str) -> Part:
    kept = [part for part in parts if part is not None]
    if len(kept) < 2:
        return kept[0] if kept else None
    return "(" + f" {operator} ".join(kept) + ")"


class _Parser:
    """Recursive descent over the tokens, writing ``to_tsquery`` text as it goes."""

    def __init__(self, query: str) -> None:
        self.tokens = _tokens(query)
        self.i = 0

    def parse(self) -> str:
        if not self.tokens:
            raise BadQuery("the query has no terms")
        out = self._or(_ALL)
        if self.i < len(self.tokens):
            raise self._error()
        return NOTHING if out is None else out

    def _peek(self, offset: int = 0) -> _Token | None:
        at = self.i + offset
        return self.tokens[at] if at < len(self.tokens) else None

    def _error(self) -> BadQuery:
        token = self._peek()
        if token is None:
            return BadQuery("syntax error: the query ends too early")
        return BadQuery(f"syntax error near {token.text!r} at character {token.at + 1}")

    def _operator(self, name: str) -> bool:
        token = self._peek()
        if token is not None and token.kind == "word" and token.text == name:
            self.i += 1
            return True
        return False

    def _or(self, columns: frozenset[str]) -> Part:
        parts = [self._and(columns)]
        while self._operator("OR"):
            parts.append(self._and(columns))
        return _joined(parts, "|")

    def _and(self, columns: frozenset[str]) -> Part:
        parts = [self._not(columns)]
        while self._operator("AND"):
            parts.append(self._not(columns))
        return None if None in parts else _joined(parts, "&")

    def _not(self, columns: frozenset[str]) -> Part:
        out = self._primary(columns)
        while self._operator("NOT"):
            right = self._primary(columns)
            if out is not None and right is not None:
                out = f"({out} & !{right})"
        return out

    def _primary(self, columns: frozenset[str]) -> Part:
        token = self._peek()
        if token is not None and token.kind == "(":
            return self._group(columns)
        if self._starts_filter():
            filtered = columns & self._column_filter()
            if (after := self._peek()) is not None and after.kind == "(":
                return self._group(filtered)
            return self._sequence(columns, first=filtered)
        return self._sequence(columns)

    def _group(self, columns: frozenset[str]) -> Part:
        self.i += 1
        inner = self._or(columns)
        token = self._peek()
        if token is None or token.kind != ")":
            raise self._error()
        self.i += 1
        return inner

    def _sequence(self, columns: frozenset[str], first: frozenset[str] | None = None) -> Part:
        """Phrases side by side (FTS5's implicit AND), each with its own column filter."""
        parts = [self._phrase(first if first is not None else columns)]
        while self._at_phrase():
            filtered = columns & self._column_filter() if self._starts_filter() else columns
            parts.append(self._phrase(filtered))
        return _joined(parts, "&")

    def _at_phrase(self) -> bool:
        token = self._peek()
        if token is None:
            return False
        if token.kind == "word":
            return token.text not in _OPERATORS
        return token.kind in ("string", "-", "{", "^")

    def _starts_filter(self) -> bool:
        token, after = self._peek(), self._peek(1)
        if token is None:
            return False
        if token.kind in ("-", "{"):
            return True
        return (token.kind in ("word", "string") and after is not None and after.kind == ":"
                and token.text not in _OPERATORS)

    def _column_filter(self) -> frozenset[str]:
        """``col:``, ``-col:``, ``{a b}:``, ``-{a b}:`` as the weights they allow."""
        negate = self._take("-")
        names = []
        if self._take("{"):
            while (token := self._peek()) is not None and token.kind in ("word", "string"):
                names.append(self._column(token))
            if not self._take("}"):
                raise self._error()
        else:
            token = self._peek()
            if token is None or token.kind not in ("word", "string"):
                raise self._error()
            names.append(self._column(token))
        if not self._take(":"):
            raise self._error()
        chosen = frozenset(COLUMN_WEIGHTS[name] for name in names)
        return _ALL - chosen if negate else chosen

    def _column(self, token: _Token) -> str:
        name = token.text.lower()
        if name not in COLUMN_WEIGHTS:
            raise BadQuery(f"no such column: {token.text}")
        self.i += 1
        return name

    def _take(self, kind: str) -> bool:
        token = self._peek()
        if token is not None and token.kind == kind:
            self.i += 1
            return True
        return False

    def _phrase(self, columns: frozenset[str]) -> Part:
        """Strings joined by ``+``, each perhaps a prefix: one phrase (``<->``)."""
        token = self._peek()
        if token is not None and token.kind == "^":
            raise BadQuery("'^' (first word of a column) is not supported")
        if token is not None and token.text == "NEAR" and (after := self._peek(1)) \
                and after.kind == "(":
            raise BadQuery("NEAR(…) groups are not supported")
        weights = "".join(sorted(columns)) if columns != _ALL else ""
        parts = [self._string(weights)]
        while self._take("+"):
            parts.append(self._string(weights))
        return _joined(parts, "<->")

    def _string(self, weights: str) -> Part:
        token = self._peek()
        if token is None or token.kind not in ("word", "string") or (
                token.kind == "word" and token.text in _OPERATORS):
            raise self._error()
        self.i += 1
        prefix = self._take("*")
        if not _A_WORD.search(token.text):
            return None
        if not prefix:
            return _lexeme(token.text, weights)
        # FTS5 makes the last word of the string a prefix; the words before stay whole.
        last = _LAST_WORD.search(token.text)
        assert last is not None  # the string has a word
        head = token.text[:last.start()]
        whole = _lexeme(head, weights) if _A_WORD.search(head) else None
        return _joined([whole, _lexeme(last.group(1), "*" + weights)], "<->")


def to_tsquery_text(query: str) -> str:
    """``to_tsquery`` input for a query of the language; :class:`BadQuery` if invalid."""
    return _Parser(query).parse()


def plain_tsquery_text(text: str) -> str:
    """Every whitespace-separated word as written, all of them required (no operator).

    A word is cut where SQLite's tokenizer cuts it (at anything but a letter or digit), its
    pieces a phrase: "hello-world" is "hello" followed by "world", as FTS5 reads the quoted
    word; PostgreSQL's parser would otherwise also require the compound 'hello-world'.
    """
    words = [_joined([_lexeme(piece, "") for piece in _PIECES.findall(word)], "<->")
             for word in text.split()]
    return _joined(words, "&") or NOTHING
