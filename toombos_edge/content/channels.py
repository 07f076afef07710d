"""The channels content is made for, their spellings, limits, and the request vocabularies."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import TypeVar

from ..errors import Invalid

E = TypeVar("E", bound=StrEnum)


class Channel(StrEnum):
    email = "email"  #: subject, preheader, inline-styled HTML and a plain-text part
    website = "website"  #: an HTML article served at /site/{slug}
    twitter = "social_twitter"  #: a post or a thread of posts of at most 280 characters
    linkedin = "social_linkedin"  #: one post of at most 3,000 characters
    facebook = "social_facebook"  #: one post (63,206 characters at most)

    @property
    def result_key(self) -> str:
        """The key of this channel in a job's ``results`` (the client contract's names)."""
        return self.value.removeprefix("social_")

    @property
    def is_social(self) -> bool:
        return self.value.startswith("social_")


ALL_CHANNELS: tuple[Channel, ...] = tuple(Channel)
SOCIAL_CHANNELS: tuple[Channel, ...] = tuple(c for c in Channel if c.is_social)

_ALIASES = {
    **{c.value: c for c in Channel},
    **{c.result_key: c for c in Channel},
    "web": Channel.website,
    "x": Channel.twitter,
}


def parse_channel(raw: object) -> Channel:
    """A channel from any accepted spelling (``social_twitter``, ``twitter``, ``x`` …)."""
    if isinstance(raw, str):
        channel = _ALIASES.get(raw.strip().lower())
        if channel is not None:
            return channel
    raise Invalid(
        f"unknown channel {raw!r}", {"known_channels": [c.value for c in Channel]}
    )


@dataclass(frozen=True, slots=True)
class Platform:
    """A social platform's rules for a post."""

    limit: int  #: most characters in one post (Twitter's weighted count)
    threads: bool  #: whether a long text may become a thread of posts
    max_hashtags: int
    max_posts: int = 1
    body_max: int = 280  #: most characters of the document's text in a single post


PLATFORMS: dict[Channel, Platform] = {
    Channel.twitter: Platform(limit=280, threads=True, max_hashtags=3, max_posts=8),
    Channel.linkedin: Platform(limit=3000, threads=False, max_hashtags=5, body_max=1300),
    Channel.facebook: Platform(limit=63206, threads=False, max_hashtags=3, body_max=1000),
}


class Style(StrEnum):
    modern = "modern"  #: bold header band, rounded card, sans-serif
    classic = "classic"  #: serif, centred masthead, ruled sections
    minimal = "minimal"  #: plain text look, no colour, no emoji


class Tone(StrEnum):
    professional = "professional"  #: measured, third person, no exclamation marks
    casual = "casual"  #: friendly and short
    encouraging = "encouraging"  #: warm and motivating


class ContentType(StrEnum):
    update = "update"  #: news about something that already exists
    blog = "blog"  #: an article to read
    announcement = "announcement"  #: something new, announced


def parse_choice(enum: type[E], raw: object, field: str, default: E) -> E:
    """``raw`` as a member of ``enum``; None gives ``default``; anything else is a 422."""
    if raw is None or raw == "":
        return default
    if isinstance(raw, str):
        try:
            return enum(raw.strip().lower())
        except ValueError:
            pass
    raise Invalid(
        f"'{field}' must be one of {', '.join(m.value for m in enum)}; got {raw!r}",
        {"field": field, "allowed": [m.value for m in enum]},
    )
