"""Events and the in-process event bus.

Every state change is published here; the WebSocket hub, the activity log and the metrics
subscribe. An event is encoded to JSON once, however many subscribers send it on.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, Protocol

import orjson

from .ids import iso

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
#: An admin asked for a restart (POST /admin/restart); for the activity log, not sockets.
RESTART_REQUESTED = "restart_requested"
#: A message from an admin to every dashboard (POST /admin/broadcast).
ANNOUNCEMENT = "announcement"
#: A WebSocket was accepted, refused (with its reason) or closed; for the activity log.
WS_CONNECTION = "ws_connection"
#: A request refused by authentication (401) or by its role (403), with the route.
AUTH_REFUSED = "auth_refused"
#: A request refused by a rate limit (429): the first refusal of a client in a row.
RATE_LIMITED = "rate_limited"
#: An API key was created (its id, name and role; never the secret).
KEY_CREATED = "key_created"
#: The job queue was paused or resumed by an admin.
QUEUE_PAUSED = "queue_paused"
QUEUE_RESUMED = "queue_resumed"
#: A cancel of a job another node runs, asked of this one (for the node that runs it).
CANCEL_REQUESTED = "job_cancel_requested"
#: A node that starts asks the others whether the queue is paused; a paused node answers
#: with QUEUE_STATE (between nodes only: neither is logged nor sent to sockets).
QUEUE_STATE_ASKED = "queue_state_asked"
QUEUE_STATE = "queue_state"
#: An emergency publish or a rollback (POST /api/critical/*).
CRITICAL_OPERATION = "critical_operation"
#: A project was created, updated or deleted (its id and name; for the activity log).
PROJECT_CREATED = "project_created"
PROJECT_UPDATED = "project_updated"
PROJECT_DELETED = "project_deleted"

#: Notes of a ``job_update`` (``Event.note``): a worker started the job; it was retried.
STARTED = "started"
RETRIED = "retried"
#: Note of a change a node found in the database rather than made (a key revoked by the
#: command line): announced to close what it must, audited by whoever made it.
NOTICED = "noticed"

JOB_EVENTS = frozenset({JOB_CREATED, JOB_UPDATE, JOB_COMPLETED, JOB_FAILED, JOB_CANCELLED})
#: Events about the server itself: logged, never sent to WebSocket clients.
INTERNAL = frozenset({KEY_REVOKED, WS_CONNECTION, AUTH_REFUSED, KEY_CREATED, QUEUE_PAUSED,
                      QUEUE_RESUMED, CRITICAL_OPERATION, RESTART_REQUESTED, RATE_LIMITED,
                      PROJECT_CREATED, PROJECT_UPDATED, PROJECT_DELETED, CANCEL_REQUESTED,
                      QUEUE_STATE_ASKED, QUEUE_STATE})

#: Where a personal message goes: ("client", client_id) or ("session", session_id).
Address = tuple[str, str]


class Renders(Protocol):
    """Something that renders itself as a JSON object when asked (a job's snapshot)."""

    def to_json(self) -> dict[str, Any]: ...


class Event:
    """``{"type": …, "job" or "data": …, "timestamp": ISO}``; ``encoded`` is computed once.

    An event with an ``address`` is a personal message: only the WebSockets of that client
    or session receive it. A job event may carry a snapshot of the job instead of its JSON
    (``Event(type, snapshot)`` is ``Event.job(type, snapshot)``): the body is rendered on
    first use, so an event nobody sends on costs no rendering.
    """

    __slots__ = ("_body", "_encoded", "_job", "address", "note", "timestamp", "type")

    def __init__(
        self,
        type_: str,
        body: dict[str, Any] | Renders,
        timestamp: int | None = None,
        address: Address | None = None,
        note: str | None = None,
    ) -> None:
        self.type = type_
        #: What a ``job_update`` means when the job alone cannot say (``started``,
        #: ``retried``): for the activity log, never sent.
        self.note = note
        self._body: dict[str, Any] | None = None
        self._job: Renders | None = None  #: rendered under "job" on first use
        if isinstance(body, dict):
            self._body = body
        else:
            self._job = body
        # now_ms(), inlined: a job makes three events, and a Python call costs more than this.
        self.timestamp = time.time_ns() // 1_000_000 if timestamp is None else timestamp
        self.address = address
        self._encoded: bytes | None = None

    @classmethod
    def data(cls, type_: str, data: dict[str, Any]) -> Event:
        return cls(type_, {"data": data})

    @classmethod
    def job(cls, type_: str, job: dict[str, Any] | Renders) -> Event:
        """A job event, from the job's JSON or from a snapshot that renders it later."""
        return cls(type_, {"job": job} if isinstance(job, dict) else job)

    @property
    def body(self) -> dict[str, Any]:
        if self._body is None:
            assert self._job is not None
            self._body = {"job": self._job.to_json()}
        return self._body

    @property
    def subject(self) -> Renders | None:
        """The object a job event was made from (a job or its snapshot), unrendered; None
        when the event was made from JSON. Subscribers that only count read it, and so
        cost no rendering."""
        return self._job

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
        # A tuple, replaced on each change: publishing (every job state change) copies nothing.
        self._subscribers: tuple[Subscriber, ...] = ()
        self.published = 0

    def __repr__(self) -> str:
        return f"<EventBus subscribers={len(self._subscribers)} published={self.published}>"

    def subscribe(self, subscriber: Subscriber) -> Callable[[], None]:
        """Add a subscriber; returns the function that removes it."""
        self._subscribers = (*self._subscribers, subscriber)

        def unsubscribe() -> None:
            if subscriber in self._subscribers:
                subscribers = list(self._subscribers)
                subscribers.remove(subscriber)
                self._subscribers = tuple(subscribers)

        return unsubscribe

    def publish(self, event: Event) -> None:
        self.published += 1
        for subscriber in self._subscribers:
            try:
                subscriber(event)
            except Exception:  # one broken subscriber must not starve the others
                log.exception("event subscriber failed on %s", event.type)
