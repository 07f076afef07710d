"""The generate request as a client sends it: the typed body, decoded and checked once.

msgspec checks the types, lengths and patterns while it decodes the JSON; ``request_of``
then only resolves the spellings (``living_doc_id``, ``channel``, ``style``, ``content``,
comma-separated lists) into the one ``GenerateRequest`` a job is made of. Stored job params
and batch items, which come as JSON objects, go through ``request.parse`` instead.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Literal

import msgspec
from msgspec import UNSET, Meta, UnsetType

from ..errors import Invalid
from .channels import ContentType, Style, Tone, parse_choice
from .request import (
    MAX_RECIPIENTS,
    MAX_TAGS,
    MAX_TEXT,
    MAX_TITLE,
    GenerateRequest,
    parse_channels,
    parse_recipients,
    parse_schedule,
    parse_words,
)


class ChannelName(StrEnum):
    """Every accepted spelling of a channel: the contract's names, then the names of its
    results' keys and the older backend's, then short aliases."""

    email = "email"
    website = "website"
    social_twitter = "social_twitter"
    social_linkedin = "social_linkedin"
    social_facebook = "social_facebook"
    twitter = "twitter"
    linkedin = "linkedin"
    facebook = "facebook"
    web = "web"
    x = "x"


_NAME = "(?:" + "|".join(name.value for name in ChannelName) + ")"
#: The channels: a list of names, or the names in one comma-separated string.
Channels = (Annotated[list[ChannelName], Meta(min_length=1, max_length=20)]
            | Annotated[str, Meta(pattern=rf"^ *{_NAME}(?: *, *{_NAME})* *$")])
_EMAIL = r"[^@\s<>,;\"]+@[^@\s<>,;\"]+\.[^@\s<>,;\"]+"
#: A list, or one comma-separated string (what a query string or a form carries).
Words = Annotated[list[Annotated[str, Meta(max_length=100)]], Meta(max_length=MAX_TAGS)] | str
Recipients = (Annotated[list[Annotated[str, Meta(pattern=f"^{_EMAIL}$")]],
                         Meta(max_length=MAX_RECIPIENTS)]
              | Annotated[str, Meta(pattern=rf"^ *(?:{_EMAIL}(?: *, *{_EMAIL})*)? *$")])
# A body may send "" for "the default" (a form's empty select).
ContentTypeOrBlank = Literal[(*(m.value for m in ContentType), "")]  # type: ignore[valid-type]
StyleOrBlank = Literal[(*(m.value for m in Style), "")]  # type: ignore[valid-type]
ToneOrBlank = Literal[(*(m.value for m in Tone), "")]  # type: ignore[valid-type]


class GenerateFields(msgspec.Struct, kw_only=True):
    """The fields of a generate body (the API's ``Generate`` adds the contract's base)."""

    document_id: Annotated[str, Meta(max_length=200)] | None = None
    living_doc_id: Annotated[str, Meta(max_length=200)] | None = None
    title: Annotated[str, Meta(max_length=MAX_TITLE)] | None = None
    text: Annotated[str, Meta(max_length=MAX_TEXT)] | None = None
    content: Annotated[str, Meta(max_length=MAX_TEXT)] | None = None
    channels: Channels | None = None
    channel: ChannelName | None = None
    tags: Words | None = None
    content_type: ContentTypeOrBlank | None = None  # type: ignore[valid-type]
    template_style: StyleOrBlank | None = None  # type: ignore[valid-type]
    style: StyleOrBlank | None = None  # type: ignore[valid-type]
    tone: ToneOrBlank | None = None  # type: ignore[valid-type]
    dry_run: bool = False
    publish: bool | UnsetType = UNSET
    link: Annotated[str, Meta(max_length=2000, pattern="^https?://")] | None = None
    recipients: Recipients | None = None
    schedule_time: Annotated[str, Meta(description="ISO 8601 with a time zone")] | None = None
    scheduled_for: str | None = None
    metadata: dict[str, Any] | None = None
    idempotency_key: Annotated[str, Meta(max_length=200)] | None = None


def _blank(value: str | None) -> str | None:
    return value or None


def request_of(body: GenerateFields, *, publish: bool | None = None) -> GenerateRequest:
    """The request a checked body asks for; ``publish`` overrides the body's (sync: True).
    Raises ``Invalid`` (422) when it names neither a document nor a text."""
    document_id = _blank(body.document_id) or _blank(body.living_doc_id)
    text = _blank(body.text)
    if text is None:
        text = _blank(body.content)
    if document_id is None and not (text and text.strip()):
        raise Invalid("give a 'document_id' (or 'living_doc_id') or an inline 'text'",
                      {"field": "document_id"})
    channels = body.channels or ([body.channel] if body.channel is not None else None)
    style = body.template_style if body.template_style is not None else body.style
    asked = body.publish if isinstance(body.publish, bool) else False
    return GenerateRequest(
        channels=parse_channels(channels),
        document_id=document_id,
        title=_blank(body.title),
        text=text,
        tags=parse_words(body.tags, "tags", MAX_TAGS),
        content_type=parse_choice(ContentType, body.content_type, "content_type",
                                  ContentType.update),
        style=parse_choice(Style, style, "template_style", Style.modern),
        tone=parse_choice(Tone, body.tone, "tone", Tone.professional),
        dry_run=body.dry_run,
        publish=asked if publish is None else publish,
        link=body.link,
        recipients=parse_recipients(body.recipients),
        scheduled_for=parse_schedule(body.schedule_time if body.schedule_time is not None
                                     else body.scheduled_for),
        metadata=body.metadata or {},
    )
