"""Social posts that fit: platform-weighted lengths, hashtags, and threads.

Lengths are counted the way Twitter counts them (code points past U+10FF weigh two), which
is never less than the plain count, so a post that fits here fits on every platform.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from .channels import Platform
from .text import sentences, truncate

_TAG_WORDS = re.compile(r"[^\W_]+")


def weighted_len(text: str) -> int:
    """Length as a platform counts it: most scripts 1, CJK and emoji 2 per character."""
    return sum(1 if ord(ch) <= 0x10FF else 2 for ch in text)


def hashtags(tags: Iterable[str], limit: int) -> list[str]:
    """``#CamelCase`` hashtags from tags, without duplicates, at most ``limit``."""
    out: list[str] = []
    seen: set[str] = set()
    for tag in tags:
        parts = _TAG_WORDS.findall(str(tag))
        if not parts:
            continue
        word = "".join(p[:1].upper() + p[1:] for p in parts)
        if word.lower() not in seen:
            seen.add(word.lower())
            out.append("#" + word)
        if len(out) >= limit:
            break
    return out


def fit(text: str, limit: int) -> str:
    """``text`` cut at a word boundary so that its weighted length is at most ``limit``."""
    if weighted_len(text) <= limit:
        return text
    budget = limit
    while budget > 0:
        candidate = truncate(text, budget)
        if weighted_len(candidate) <= limit:
            return candidate
        budget -= max(1, (weighted_len(candidate) - limit))
    return ""


def single_post(head: str, body: str, tail: str, platform: Platform) -> str:
    """One post: ``head``, as much of ``body`` as fits, then ``tail`` (link, hashtags)."""
    fixed = "\n\n".join(part for part in (head, tail) if part)
    room = platform.limit - weighted_len(fixed) - 4
    parts = [head, fit(body, room) if room > 20 else "", tail]
    return fit("\n\n".join(p for p in parts if p), platform.limit)


def thread(head: str, body: str, tail: str, platform: Platform) -> list[str]:
    """A thread: the head and tail in the first post, the body split by sentences after it.

    Each post ends with its number (``2/5``); the body is cut with an ellipsis if it
    needs more than ``platform.max_posts`` posts.
    """
    first = fit("\n\n".join(p for p in (head, tail) if p), platform.limit - 6)
    chunks = _pack(_pieces(body, platform.limit - 8), platform.limit - 8)
    chunks = chunks[: platform.max_posts - 1]
    if chunks and not body.rstrip().endswith(chunks[-1].rstrip()):
        chunks[-1] = fit(chunks[-1], platform.limit - 10).rstrip("…") + "…"
    posts = [first, *chunks]
    if len(posts) == 1:
        return posts
    total = len(posts)
    return [f"{post} {i}/{total}" for i, post in enumerate(posts, 1)]


def _pieces(body: str, limit: int) -> list[str]:
    """Sentences, with any sentence longer than ``limit`` cut into word runs that fit."""
    out: list[str] = []
    for whole in sentences(body):
        rest = whole
        while weighted_len(rest) > limit:
            head = fit(rest, limit).rstrip("…")
            out.append(head)
            rest = rest[len(head) :].strip()
        if rest:
            out.append(rest)
    return out


def _pack(pieces: list[str], limit: int) -> list[str]:
    chunks: list[str] = []
    current = ""
    for piece in pieces:
        joined = f"{current} {piece}" if current else piece
        if weighted_len(joined) <= limit:
            current = joined
        else:
            chunks.append(current)
            current = piece
    if current:
        chunks.append(current)
    return [c for c in chunks if c]
