"""One accepted WebSocket: who is on it, what it listens to, and its bounded send queue.

Events are framed once and the same bytes are written to every socket that wants them
(server frames are unmasked, so they are identical for all). The socket's send queue is its
transport's write buffer: once more than ``queue_limit`` bytes wait there, the peer is not
keeping up and ``send`` refuses, so the hub can close it with 1013 instead of buffering.
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from aiohttp import web

from ..events import Event
from ..ids import iso, new_id, now_ms
from ..keys import Role

_OP_TEXT_FIN = 0x81


def text_frame(payload: bytes) -> bytes:
    """A complete unmasked, uncompressed text frame (RFC 6455 section 5.2)."""
    size = len(payload)
    if size < 126:
        header = struct.pack("!BB", _OP_TEXT_FIN, size)
    elif size < 65536:
        header = struct.pack("!BBH", _OP_TEXT_FIN, 126, size)
    else:
        header = struct.pack("!BBQ", _OP_TEXT_FIN, 127, size)
    return header + payload


class Endpoint(StrEnum):
    jobs = "jobs"  #: /ws/jobs: every job event, or the subscribed jobs'
    status = "status"  #: /ws/status/{job_id}: one job until it ends
    dashboard = "dashboard"  #: /ws/dashboard: everything, plus stats_update
    content = "content"  #: /ws/content/{client_id}: content events and personal messages
    session = "session"  #: /ws/session/{session_id}: the same, addressed by session


@dataclass(frozen=True, slots=True)
class Peer:
    """Who the gate let in."""

    ip: str
    role: Role
    key_id: str | None  #: None for an anonymous browser (TOOMBOS_WS_AUTH=origin)
    via: str  #: header, api_key, ws_token, jwt (an identity-provider token) or origin
    origin: str | None = None

    @property
    def read_only(self) -> bool:
        return self.key_id is None


class RateLimit:
    """A token bucket: ``rate`` messages a second, bursts of ``burst``."""

    __slots__ = ("_at", "_clock", "_tokens", "burst", "rate")

    def __init__(self, rate: float, burst: float, clock: Callable[[], float]) -> None:
        self.rate, self.burst, self._clock = rate, burst, clock
        self._tokens, self._at = burst, clock()

    def allow(self) -> bool:
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
        self._at = now
        if self._tokens < 1:
            return False
        self._tokens -= 1
        return True


class Connection:
    """One open socket. ``subscriptions`` is None while it takes every job event."""

    __slots__ = ("_transport", "close_code", "close_reason", "endpoint", "id", "limit",
                 "opened_at", "peer", "pending", "rate", "sent", "subscriptions", "target",
                 "ws")

    def __init__(
        self,
        ws: web.WebSocketResponse,
        transport: asyncio.Transport,
        endpoint: Endpoint,
        peer: Peer,
        *,
        target: str | None = None,
        queue_limit: int,
        rate: RateLimit,
    ) -> None:
        self.id = new_id("wsc")
        self.ws, self._transport = ws, transport
        self.endpoint, self.peer, self.target = endpoint, peer, target
        self.limit, self.rate = queue_limit, rate
        self.opened_at = now_ms()
        self.sent = 0
        self.subscriptions: set[str] | None = None
        #: Events held back until the socket's first message is out (see ``hold``).
        self.pending: list[Event] | None = None
        self.close_code: int | None = None
        self.close_reason = "client"

    def __repr__(self) -> str:
        return f"<Connection {self.id} {self.endpoint} {self.peer.ip} sent={self.sent}>"

    @property
    def closing(self) -> bool:
        return self.close_code is not None or self.ws.closed or self._transport.is_closing()

    def queued(self) -> int:
        """Bytes written but not yet taken by the peer's TCP stack."""
        return self._transport.get_write_buffer_size()

    def send(self, frame: bytes) -> bool:
        """Queue one frame; False when the queue is full (the peer is too slow)."""
        if self.closing:
            return True  # nothing more goes out after a close frame
        if self._transport.get_write_buffer_size() + len(frame) > self.limit:
            return False
        self._transport.write(frame)
        self.sent += 1
        return True

    def hold(self) -> None:
        """Keep events back until ``release``: the first message must be the current state."""
        self.pending = []

    def release(self) -> list[Event]:
        held, self.pending = self.pending or [], None
        return held

    def abort(self) -> None:
        """Cut the TCP connection, dropping whatever is still queued."""
        self._transport.abort()

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "endpoint": self.endpoint.value,
            "target": self.target,
            "ip": self.peer.ip,
            "key_id": self.peer.key_id,
            "role": self.peer.role.name,
            "auth": self.peer.via,
            "origin": self.peer.origin,
            "opened_at": iso(self.opened_at),
            "sent": self.sent,
            "queued_bytes": self.queued(),
            "subscriptions": None if self.subscriptions is None else sorted(self.subscriptions),
        }

