"""A generate request: every accepted spelling in, one normalised params dict out.

Spellings of the contract (``document_id``, ``channels``, ``template_style``,
``schedule_time``), of the seed's form (``living_doc_id``, a single ``channel``) and of the
older backend (``twitter`` for ``social_twitter``) all end up as the same params, which is
what a ``generate`` job stores and its handler reads. ``parse`` reads JSON objects (stored
params, batch items, emergencies); a body the HTTP layer decoded goes through
``request_body.request_of`` instead, to the same ``GenerateRequest``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ..errors import Invalid
from .channels import (
    ALL_CHANNELS,
    Channel,
    ContentType,
    Style,
    Tone,
    parse_channel,
    parse_choice,
)

MAX_TITLE = 500
MAX_TEXT = 1_000_000
MAX_TAGS = 50
MAX_RECIPIENTS = 100
_EMAIL = re.compile(r"^[^@\s<>,;\"]+@[^@\s<>,;\"]+\.[^@\s<>,;\"]+$")


@dataclass(frozen=True, slots=True)
class GenerateRequest:
    """What to make, from what, and what to do with it."""

    channels: tuple[Channel, ...]
    document_id: str | None = None
    title: str | None = None
    text: str | None = None
    tags: tuple[str, ...] = ()
    content_type: ContentType = ContentType.update
    style: Style = Style.modern
    tone: Tone = Tone.professional
    dry_run: bool = False
    publish: bool = False
    link: str | None = None
    recipients: tuple[str, ...] = ()
    scheduled_for: int | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    batch: dict[str, Any] | None = None  #: {id, index, size, parallel, fail_fast} in a batch

    def to_params(self) -> dict[str, Any]:
        """The job's params (JSON): what the handler reads back with :meth:`from_params`."""
        return {
            "channels": [c.value for c in self.channels],
            "document_id": self.document_id,
            "title": self.title,
            "text": self.text,
            "tags": list(self.tags),
            "content_type": self.content_type.value,
            "template_style": self.style.value,
            "tone": self.tone.value,
            "dry_run": self.dry_run,
            "publish": self.publish,
            "link": self.link,
            "recipients": list(self.recipients),
            "batch": self.batch,
        }

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> GenerateRequest:
        return parse(params)


def parse(body: dict[str, Any], *, publish: bool | None = None) -> GenerateRequest:
    """Parse and check a request body; raises ``Invalid`` (422) naming the bad field."""
    document_id = _optional_str(body, "document_id") or _optional_str(body, "living_doc_id")
    text = _optional_str(body, "text", MAX_TEXT)
    if text is None:
        text = _optional_str(body, "content", MAX_TEXT)
    if document_id is None and not (text and text.strip()):
        raise Invalid("give a 'document_id' (or 'living_doc_id') or an inline 'text'",
                      {"field": "document_id"})
    return GenerateRequest(
        channels=_channels(body),
        document_id=document_id,
        title=_optional_str(body, "title", MAX_TITLE),
        text=text,
        tags=_strings(body, "tags", MAX_TAGS),
        content_type=parse_choice(ContentType, body.get("content_type"), "content_type",
                                  ContentType.update),
        style=parse_choice(Style, body.get("template_style", body.get("style")),
                           "template_style", Style.modern),
        tone=parse_choice(Tone, body.get("tone"), "tone", Tone.professional),
        dry_run=_flag(body, "dry_run"),
        publish=_flag(body, "publish") if publish is None else publish,
        link=_link(body),
        recipients=_recipients(body),
        scheduled_for=_schedule(body),
        metadata=_metadata(body),
        batch=_batch(body.get("batch")),
    )


def validate_params(params: dict[str, Any]) -> dict[str, Any]:
    """The ``generate`` kind's validator: normalise params or refuse them with a 422."""
    return parse(params).to_params()


def _channels(body: dict[str, Any]) -> tuple[Channel, ...]:
    raw = body.get("channels")
    if raw is None and body.get("channel") is not None:
        raw = [body["channel"]]
    return parse_channels(raw)


def parse_channels(raw: Any) -> tuple[Channel, ...]:
    """Channel names (a list, or one comma-separated string; None: every channel), each
    once, in the order given."""
    if raw is None:
        return ALL_CHANNELS
    if isinstance(raw, str):
        raw = [part for part in raw.split(",") if part.strip()]
    if not isinstance(raw, list) or not raw:
        raise Invalid("'channels' must be a non-empty list of channel names",
                      {"field": "channels", "known_channels": [c.value for c in Channel]})
    return tuple(dict.fromkeys(parse_channel(item) for item in raw))


def _optional_str(body: dict[str, Any], name: str, limit: int = 200) -> str | None:
    value = body.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise Invalid(f"'{name}' must be a string", {"field": name})
    if len(value) > limit:
        raise Invalid(f"'{name}' is longer than {limit} characters", {"field": name})
    return value


def _strings(body: dict[str, Any], name: str, limit: int) -> tuple[str, ...]:
    return parse_words(body.get(name), name, limit)


def parse_words(value: Any, name: str, limit: int) -> tuple[str, ...]:
    """Words (a list, or one comma-separated string), stripped, blanks left out."""
    if value is None:
        return ()
    if isinstance(value, str):
        value = [part.strip() for part in value.split(",")]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise Invalid(f"'{name}' must be a list of strings", {"field": name})
    if len(value) > limit:
        raise Invalid(f"'{name}' has more than {limit} items", {"field": name})
    return tuple(v.strip()[:100] for v in value if v.strip())


def _recipients(body: dict[str, Any]) -> tuple[str, ...]:
    return parse_recipients(body.get("recipients"))


def parse_recipients(value: Any) -> tuple[str, ...]:
    """Email addresses (a list, or one comma-separated string); 422 for anything else."""
    recipients = _strings({"recipients": value}, "recipients", MAX_RECIPIENTS)
    for address in recipients:
        if not _EMAIL.match(address):
            raise Invalid(f"not an email address: {address!r}", {"field": "recipients"})
    return recipients


def _flag(body: dict[str, Any], name: str) -> bool:
    value = body.get(name, False)
    if not isinstance(value, bool):
        raise Invalid(f"'{name}' must be true or false", {"field": name})
    return value


def _link(body: dict[str, Any]) -> str | None:
    link = _optional_str(body, "link", 2000)
    if link is not None and not link.startswith(("https://", "http://")):
        raise Invalid("'link' must be an http(s) URL", {"field": "link"})
    return link


def _schedule(body: dict[str, Any]) -> int | None:
    return parse_schedule(body.get("schedule_time", body.get("scheduled_for")))


def parse_schedule(raw: Any) -> int | None:
    """An ISO 8601 time with a zone as integer ms (None or "": now)."""
    if raw is None or raw == "":
        return None
    if not isinstance(raw, str):
        raise Invalid("'schedule_time' must be an ISO 8601 time", {"field": "schedule_time"})
    try:
        moment = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise Invalid(f"'schedule_time' is not an ISO 8601 time: {raw!r}",
                      {"field": "schedule_time"}) from None
    if moment.tzinfo is None:
        raise Invalid("'schedule_time' needs a time zone (end it with Z for UTC)",
                      {"field": "schedule_time"})
    return int(moment.timestamp() * 1000)


def _batch(value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    ok = (isinstance(value, dict) and isinstance(value.get("id"), str)
          and isinstance(value.get("index"), int) and isinstance(value.get("size"), int))
    if not ok:
        raise Invalid("'batch' is set by the batch endpoints: {id, index, size, …}",
                      {"field": "batch"})
    return {"id": value["id"], "index": value["index"], "size": value["size"],
            "parallel": bool(value.get("parallel", True)),
            "fail_fast": bool(value.get("fail_fast", False))}


def _metadata(body: dict[str, Any]) -> dict[str, Any]:
    value = body.get("metadata")
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise Invalid("'metadata' must be a JSON object", {"field": "metadata"})
    return value
