"""Publishing a content item to its channel's sink.

- ``website``: served by this server at ``/site/{slug}``; publishing marks it live.
- ``email``: sent to the configured SMTP server, or written to ``<data>/outbox`` as an
  ``.eml`` file when none is configured.
- social channels: POSTed as JSON to the channel's webhook, signed with HMAC-SHA256 over
  ``"{timestamp}." + body`` (header ``X-Toombos-Signature: sha256=<hex>``).

A failure raises ``PublishError`` so that the ``publish`` job is retried by the engine (a
sink down, a webhook answering 5xx, 408 or 429); a sink that is not set up, or a webhook
that refuses the post with another 4xx, raises ``PublishRefused``, a ``PermanentFailure``:
retrying the same request cannot help, so the job fails at once.
Blocking I/O (SMTP, HTTP, files) runs in threads, never on the event loop.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
import secrets
import smtplib
import ssl
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path
from typing import Any

import orjson

from ..events import CONTENT_PUBLISHED, Event, EventBus
from ..ids import iso, now_ms
from ..jobs.kinds import PermanentFailure
from ..records.content import ContentItem
from ..settings import Settings
from ..store.content import ContentStore
from .channels import Channel, parse_channel

SIGNATURE_HEADER = "X-Toombos-Signature"
TIMESTAMP_HEADER = "X-Toombos-Timestamp"
MAX_WEBHOOK_REPLY = 64 * 1024


class PublishError(Exception):
    """A sink refused or could not be reached; the publish job retries."""


class PublishRefused(PublishError, PermanentFailure):
    """The sink is not set up for this item (no webhook, no recipients, no slug), or it
    refused it for good (a 4xx): no retry."""


#: 4xx answers that say "not now" rather than "never": a timeout, a rate limit.
RETRYABLE_4XX = frozenset({408, 429})


@dataclass(frozen=True, slots=True)
class PublishConfig:
    """Where each channel's content goes; built from the settings."""

    public_url: str
    outbox: Path
    webhook_secret: bytes
    webhooks: dict[str, str] = field(default_factory=dict)  #: result key → URL
    smtp_host: str = ""
    smtp_port: int = 25
    smtp_starttls: bool = False
    smtp_username: str = ""
    smtp_password: str = field(default="", repr=False)
    smtp_from: str = "toombos-edge@localhost"
    smtp_to: tuple[str, ...] = ()
    timeout: float = 10.0

    def site_url(self, slug: str) -> str:
        return f"{self.public_url.rstrip('/')}/site/{slug}"


@dataclass(frozen=True, slots=True)
class Publication:
    content_id: str
    channel: str
    url: str | None
    sent: bool
    detail: str
    at: int

    def to_json(self) -> dict[str, Any]:
        return {"content_id": self.content_id, "channel": self.channel, "url": self.url,
                "sent": self.sent, "detail": self.detail, "timestamp": iso(self.at)}


def sign(secret: bytes, timestamp: str, body: bytes) -> str:
    """The webhook signature: ``sha256=`` and the hex HMAC of ``timestamp.body``."""
    mac = hmac.new(secret, timestamp.encode("ascii") + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


class Publisher:
    """Sends content items to their sinks and records the publication."""

    def __init__(self, config: PublishConfig, store: ContentStore, bus: EventBus) -> None:
        self.config = config
        self._store = store
        self._bus = bus
        self.published = 0
        self.failed = 0

    def __repr__(self) -> str:
        return f"<Publisher published={self.published} failed={self.failed}>"

    def missing_sink(self, channel: Channel) -> str | None:
        """Why ``channel`` has nowhere to go on this server; None when it has a sink (the
        website and the email outbox always do)."""
        if not channel.is_social:
            return None
        url = self.config.webhooks.get(channel.result_key, "")
        if url.startswith(("http://", "https://")):
            return None
        return (f"no webhook configured for {channel.result_key} "
                f"(set TOOMBOS_WEBHOOK_{channel.result_key.upper()})")

    async def publish(self, item: ContentItem, recipients: tuple[str, ...] = ()) -> Publication:
        """Publish ``item`` now; raises ``PublishError`` when its sink fails."""
        channel = parse_channel(item.channel)
        try:
            url, detail = await self._send(channel, item, recipients)
        except PublishError:
            self.failed += 1
            raise
        updated = await self._store.mark_published(item.id, url, now_ms())
        self.published += 1
        publication = Publication(item.id, channel.value, url, True, detail,
                                  updated.published_at or now_ms())
        self._bus.publish(Event.data(CONTENT_PUBLISHED, {
            **publication.to_json(), "job_id": item.job_id, "version": updated.version,
            "document_id": item.document_id,
        }))
        return publication

    async def _send(
        self, channel: Channel, item: ContentItem, recipients: tuple[str, ...]
    ) -> tuple[str | None, str]:
        if channel is Channel.website:
            if not item.slug:
                raise PublishRefused(f"website content {item.id} has no slug")
            return self.config.site_url(item.slug), "served by this server"
        if channel is Channel.email:
            message = build_email(item, self.config, recipients)
            return None, await asyncio.to_thread(self._deliver_email, message, item)
        return await asyncio.to_thread(self._post_webhook, channel, item)

    # -- email ------------------------------------------------------------------------

    def _deliver_email(self, message: EmailMessage, item: ContentItem) -> str:
        if not self.config.smtp_host:
            return f"written to {write_eml(self.config.outbox, message, item)}"
        recipients = [a.strip() for a in message["To"].split(",") if "@" in a]
        if not recipients:
            raise PublishRefused("no email recipients: send 'recipients' or set TOOMBOS_SMTP_TO")
        try:
            self._smtp_send(message)
        except (OSError, smtplib.SMTPException) as exc:
            raise PublishError(f"SMTP {self.config.smtp_host}:{self.config.smtp_port}: "
                               f"{type(exc).__name__}: {exc}") from exc
        return f"sent by SMTP to {len(recipients)} recipient(s)"

    def _smtp_send(self, message: EmailMessage) -> None:
        config = self.config
        with smtplib.SMTP(config.smtp_host, config.smtp_port, timeout=config.timeout) as smtp:
            if config.smtp_starttls:
                smtp.starttls(context=ssl.create_default_context())
            if config.smtp_username:
                smtp.login(config.smtp_username, config.smtp_password)
            smtp.send_message(message)

    # -- webhooks ---------------------------------------------------------------------

    def _post_webhook(self, channel: Channel, item: ContentItem) -> tuple[str | None, str]:
        missing = self.missing_sink(channel)
        if missing is not None:
            raise PublishRefused(missing)
        url = self.config.webhooks[channel.result_key]
        body = orjson.dumps(webhook_payload(item, channel))
        stamp = str(int(time.time()))
        request = urllib.request.Request(url, data=body, method="POST", headers={  # noqa: S310
            "Content-Type": "application/json",
            "User-Agent": "toombos-edge",
            TIMESTAMP_HEADER: stamp,
            SIGNATURE_HEADER: sign(self.config.webhook_secret, stamp, body),
        })
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        try:
            with opener.open(request, timeout=self.config.timeout) as response:
                reply = response.read(MAX_WEBHOOK_REPLY)
                status = response.status
        except urllib.error.HTTPError as exc:
            raise _refusal(channel, exc.code) from exc
        except (OSError, ValueError) as exc:
            raise PublishError(f"{channel.result_key} webhook unreachable: {exc}") from exc
        return _reply_url(reply), f"webhook answered {status}"


def _refusal(channel: Channel, status: int) -> PublishError:
    """A webhook's error answer: permanent for a 4xx but 408 and 429, else retried."""
    message = f"{channel.result_key} webhook answered {status}"
    if 400 <= status < 500 and status not in RETRYABLE_4XX:
        return PublishRefused(f"{message}: the post was refused, not retried")
    return PublishError(message)


def _reply_url(reply: bytes) -> str | None:
    try:
        data = orjson.loads(reply) if reply.strip() else None
    except orjson.JSONDecodeError:
        return None
    url = data.get("url") if isinstance(data, dict) else None
    return url if isinstance(url, str) else None


def webhook_payload(item: ContentItem, channel: Channel) -> dict[str, Any]:
    body = item.body
    return {
        "event": "content.publish", "content_id": item.id, "version": item.version,
        "channel": channel.value, "platform": channel.result_key,
        "posts": body.get("posts", []), "text": body.get("text", ""),
        "link": body.get("link"), "hashtags": body.get("hashtags", []),
        "thread": bool(body.get("thread")), "job_id": item.job_id,
        "document_id": item.document_id,
    }


def build_email(
    item: ContentItem, config: PublishConfig, recipients: tuple[str, ...]
) -> EmailMessage:
    """A multipart/alternative message: the plain-text part, then the HTML part."""
    body = item.body
    message = EmailMessage()
    subject = " ".join(str(body.get("subject") or body.get("title") or "").split())
    message["Subject"] = subject or "(no subject)"  # one line: no header injection
    message["From"] = config.smtp_from
    message["To"] = ", ".join(recipients or config.smtp_to) or "undisclosed-recipients:;"
    message["Date"] = formatdate(localtime=False, usegmt=True)
    message["Message-ID"] = make_msgid(domain=config.smtp_from.rpartition("@")[2] or None)
    message["X-Toombos-Content-Id"] = f"{item.id} v{item.version}"
    message.set_content(str(body.get("text") or ""))
    message.add_alternative(str(body.get("html") or ""), subtype="html")
    return message


def write_eml(outbox: Path, message: EmailMessage, item: ContentItem) -> Path:
    """Write the message to the outbox atomically (temporary file, then rename)."""
    outbox.mkdir(mode=0o700, parents=True, exist_ok=True)
    target = outbox / f"{now_ms()}-{item.id}-v{item.version}.eml"
    partial = target.with_suffix(".eml.part")
    partial.write_bytes(message.as_bytes())
    os.replace(partial, target)
    return target


def load_secret(path: Path) -> bytes:
    """The webhook key kept at ``path`` (mode 0600), created on first use."""
    try:
        return path.read_bytes().strip()
    except FileNotFoundError:
        pass
    secret = secrets.token_hex(32).encode("ascii")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(secret + b"\n")
    return secret


def config_from(settings: Settings) -> PublishConfig:
    """The publishing configuration of these settings (reads or creates the webhook key)."""
    secret = settings.webhook_secret.encode("utf-8") or load_secret(
        settings.data_dir / "webhook.key")
    return PublishConfig(
        public_url=settings.base_url,
        outbox=settings.data_dir / "outbox",
        webhook_secret=secret,
        webhooks={"twitter": settings.webhook_twitter, "linkedin": settings.webhook_linkedin,
                  "facebook": settings.webhook_facebook},
        smtp_host=settings.smtp_host, smtp_port=settings.smtp_port,
        smtp_starttls=settings.smtp_starttls, smtp_username=settings.smtp_username,
        smtp_password=settings.smtp_password, smtp_from=settings.smtp_from,
        smtp_to=settings.smtp_to,
    )
