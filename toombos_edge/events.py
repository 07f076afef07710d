"""Events and the in-process event bus.

Every state change is published here; the WebSocket hub, the activity log and the metrics
subscribe. An event is encoded to JSON once, however many subscribers send it on.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import orjson

from .ids import iso, now_ms

log = logging.getLogger(__name__)

# Event names (the wire protocol's "type" field).
JOB_CREATED = "job_created"
JOB_UPDATE = "job_update"
JOB_COMPLETED = "job_completed"
JOB_FAILED = "job_failed"
JOB_CANCELLED = "job_cancelled"
INGESTION_COMPLETE = "ingestion_complete"
QUERY_COMPLETE = "query_complete"
CONTENT_PUBLISHED = "content_published"
CACHE_INVALIDATED = "cache_invalidated"
KEY_REVOKED = "key_revoked"
ERROR = "error"
STATS_UPDATE = "stats_update"
CONNECTION_ACK = "connection_ack"
RESTARTING = "restarting"
#: A message from an admin to every dashboard (POST /admin/broadcast).
ANNOUNCEMENT = "announcement"
#: A WebSocket was accepted, refused (with its reason) or closed; for the activity log.
WS_CONNECTION = "ws_connection"

JOB_EVENTS = frozenset({JOB_CREATED, JOB_UPDATE, JOB_COMPLETED, JOB_FAILED, JOB_CANCELLED})
#: Events about the server itself: logged, never sent to WebSocket clients.
INTERNAL = frozenset({KEY_REVOKED, WS_CONNECTION})

#: Where a personal message goes: ("client", client_id) or ("session", session_id).
Address = tuple[str, str]


class Event:
    """``{"type": …, "job" or "data": …, "timestamp": ISO}``; ``encoded`` is computed once.

    An event with an ``address`` is a personal message: only the WebSockets of that client
    or session receive it.
    """

    __slots__ = ("_encoded", "address", "body", "timestamp", "type")

    def __init__(
        self,
        type_: str,
        body: dict[str, Any],
        timestamp: int | None = None,
        address: Address | None = None,
    ) -> None:
        self.type = type_
        self.body = body
        self.timestamp = now_ms() if timestamp is None else timestamp
        self.address = address
        self._encoded: bytes | None = None

    @classmethod
    def data(cls, type_: str, data: dict[str, Any]) -> Event:
        return cls(type_, {"data": data})

    @classmethod
    def job(cls, type_: str, job: dict[str, Any]) -> Event:
        return cls(type_, {"job": job})

    @classmethod
    def personal(
        cls,
        type_: str,
        data: dict[str, Any],
        *,
        client_id: str | None = None,
        session_id: str | None = None,
    ) -> Event:
        """A message for one client's (or one session's) WebSockets only."""
        if client_id is not None and session_id is None:
            address = ("client", client_id)
        elif session_id is not None and client_id is None:
            address = ("session", session_id)
        else:
            raise ValueError("address a personal event to exactly one client or session")
        return cls(type_, {"data": data}, address=address)

    def to_json(self) -> dict[str, Any]:
        return {"type": self.type, **self.body, "timestamp": iso(self.timestamp)}

    @property
    def encoded(self) -> bytes:
        if self._encoded is None:
            self._encoded = orjson.dumps(self.to_json())
        return self._encoded

    def __repr__(self) -> str:
        return f"<Event {self.type}>"


Subscriber = Callable[[Event], None]


class EventBus:
    """Synchronous fan-out to subscribers; each must return at once (queue, count, drop)."""

    def __init__(self) -> None:
        self._subscribers: list[Subscriber] = []
        self.published = 0

    def __repr__(self) -> str:
        return f"<EventBus subscribers={len(self._subscribers)} published={self.published}>"

    def subscribe(self, subscriber: Subscriber) -> Callable[[], None]:
        """Add a subscriber; returns the function that removes it."""
        self._subscribers.append(subscriber)

        def unsubscribe() -> None:
            if subscriber in self._subscribers:
                self._subscribers.remove(subscriber)

        return unsubscribe

    def publish(self, event: Event) -> None:
        self.published += 1
        for subscriber in tuple(self._subscribers):
            try:
                subscriber(event)
            except Exception:  # one broken subscriber must not starve the others
                log.exception("event subscriber failed on %s", event.type)
