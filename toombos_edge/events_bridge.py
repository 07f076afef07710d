"""Events between nodes on one PostgreSQL database: each node's bus sees every node's events.

* **Out.** A :class:`NodeBridge` subscribes to its node's bus; the events other nodes'
  clients must see (:data:`SHARED`) are numbered (one sequence per run of the node) and
  NOTIFYed in that order, in batches, by one task. A job event too large for a payload
  (large params or output) goes by reference and the receiver reads the job from the jobs
  table, as it is when read (possibly a later state than the event's); any other event too
  large is dropped, logged and counted (none of today's comes near 7,900 bytes). The
  payloads: :mod:`.events_wire`.
* **In.** Notifications are handled one at a time in arrival order (a reference is read
  before the next is handled), so the events of one job keep their order, and published
  on the bus as :class:`~.events_wire.RemoteEvent`, which the bridge never sends on: no
  echo. Its own notifications are ignored; a sequence number seen before is a duplicate (a
  batch sent again after the answer to its commit was lost); numbers skipped are counted
  in ``gaps`` (the sender dropped events past :data:`MAX_QUEUED`).
* **Catch-up.** What is NOTIFYed while the listening connection is down is lost. Back, the
  bridge reads the jobs written since the link was last known alive (less a margin for
  commit delay and clock skew) and publishes each one's current state (``job_update``, or
  the final event of a job that ended), skipping states this bus already carried; a
  notification handled next that is not newer than the state just published for its job
  is dropped, so a job never steps back (comparing ``updated_at`` written by different
  nodes: their clocks must agree, as the leases already require). The cache invalidations
  recorded meanwhile are published too (:func:`.events_catchup.missed_invalidations`);
  other events of that time are lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from .errors import DatabaseUnavailable
from .events import (
    ANNOUNCEMENT,
    CACHE_INVALIDATED,
    CANCEL_REQUESTED,
    CONTENT_PUBLISHED,
    INGESTION_COMPLETE,
    JOB_EVENTS,
    KEY_REVOKED,
    QUERY_COMPLETE,
    QUEUE_PAUSED,
    QUEUE_RESUMED,
    QUEUE_STATE,
    QUEUE_STATE_ASKED,
    Event,
    EventBus,
)
from .events_catchup import JobStates, missed_invalidations
from .events_wire import (
    JobState,
    Message,
    RemoteEvent,
    decode,
    encode,
    encode_reference,
    job_state,
)
from .store.postgres.database import PgDatabase
from .store.postgres.notify import (
    MAX_PAYLOAD,
    LinkState,
    Listener,
    notify,
    read_job,
)

log = logging.getLogger(__name__)

#: The events every node's clients must see, whichever node made them, and those every
#: node's engine acts on (the queue paused or resumed, a cancel for the job's node).
SHARED = JOB_EVENTS | {CONTENT_PUBLISHED, INGESTION_COMPLETE, QUERY_COMPLETE,
                       CACHE_INVALIDATED, ANNOUNCEMENT, KEY_REVOKED, QUEUE_PAUSED,
                       QUEUE_RESUMED, CANCEL_REQUESTED, QUEUE_STATE_ASKED, QUEUE_STATE}
MAX_QUEUED = 100_000  #: events waiting to be sent; past it they are dropped and counted
BATCH = 500  #: notifications per statement
RETRY_SECONDS = 0.5  #: between attempts to send while the database does not answer


@dataclass(slots=True)
class _CatchUp:
    since: int
    done: asyncio.Future[None]


def default_node_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


class NodeBridge:
    """Carries :data:`SHARED` events between this node's bus and every other node's."""

    def __init__(self, db: PgDatabase, bus: EventBus, *, node_id: str | None = None,
                 max_queued: int = MAX_QUEUED, ping_seconds: float = 5.0,
                 margin_ms: int = 5000) -> None:
        self._db, self._bus = db, bus
        self.node_id = node_id or default_node_id()
        #: A new run of the node starts a new sequence: receivers tell the runs apart.
        self.origin = f"{self.node_id}/{secrets.token_hex(4)}"
        self._max = max_queued
        self._seq = 0
        self._outbox: deque[tuple[int, Event]] = deque()
        self._inbox: deque[str | _CatchUp] = deque()
        self._wanted = asyncio.Event()
        self._drained = asyncio.Event()  #: set by the sender each time the outbox empties
        self._arrived = asyncio.Event()
        self._last_seq: dict[str, int] = {}
        self.jobs = JobStates()  #: what this bus carried of each job; the catch-up
        self._listener = Listener(db.url, self._on_payload, self._catch_up_in_order,
                                  ping_seconds=ping_seconds, margin_ms=margin_ms)
        self._tasks: list[asyncio.Task[None]] = []
        self._unsubscribe: Callable[[], None] | None = None
        self.sent = self.referenced = self.received = 0
        self.dropped = self.too_large = self.duplicates = self.gaps = 0

    def __repr__(self) -> str:
        return (f"<NodeBridge {self.origin} healthy={self.state.healthy} sent={self.sent} "
                f"received={self.received} queued={len(self._outbox)} "
                f"dropped={self.dropped}>")

    @property
    def state(self) -> LinkState:
        """Whether this node hears the others (for the health check)."""
        return self._listener.state

    def stats(self) -> dict[str, Any]:
        return {**self.state.to_json(), "node": self.origin, "sent": self.sent,
                "referenced": self.referenced, "received": self.received,
                "caught_up": self.jobs.caught_up, "queued": len(self._outbox),
                "dropped": self.dropped, "too_large": self.too_large, "gaps": self.gaps,
                "reconnects": self._listener.reconnects,
                "backend_pid": self._listener.backend_pid}

    async def start(self) -> None:
        """Listen (raises DatabaseUnavailable), then subscribe: from here every shared
        event of this node is sent and every other node's is published here."""
        await self._listener.start()
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._send_forever(), name="bridge-send"),
                       loop.create_task(self._receive_forever(), name="bridge-receive")]
        self._unsubscribe = self._bus.subscribe(self.on_event)

    async def close(self, flush_seconds: float = 5.0) -> None:
        """Leave the bus, send what is queued (bounded), stop listening. Idempotent."""
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        tasks, self._tasks = self._tasks, []
        if tasks and not tasks[0].done():
            self._drained.clear()
            self._wanted.set()  # the sender sets drained once it has nothing left
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(flush_seconds):
                    await self._drained.wait()
        for task in tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._listener.close()

    # -- out --------------------------------------------------------------------------------

    def on_event(self, event: Event) -> None:
        """The bus subscriber: number and queue a shared local event; returns at once."""
        if isinstance(event, RemoteEvent) or event.type not in SHARED:
            return
        if (state := job_state(event)) is not None:
            self.jobs.remember(*state)
        self._seq += 1
        if len(self._outbox) >= self._max:
            self.dropped += 1  # receivers see the gap in the sequence
            return
        self._outbox.append((self._seq, event))
        self._wanted.set()

    async def _send_forever(self) -> None:
        """Encode and send in order; a batch that failed is sent again, as it was."""
        batch: list[str] = []
        while True:
            if not batch and not self._outbox:
                self._drained.set()
                await self._wanted.wait()
                self._wanted.clear()
                continue
            while self._outbox and len(batch) < BATCH:
                seq, event = self._outbox.popleft()
                if (payload := self._payload(seq, event)) is not None:
                    batch.append(payload)
            if not batch:
                continue
            try:
                await notify(self._db, batch)
            except DatabaseUnavailable as exc:  # keep the order and try again
                log.warning("sending %d events failed (%s): retrying", len(batch), exc)
                await asyncio.sleep(RETRY_SECONDS)
                continue
            except Exception:  # whatever it is, the sender must outlive it
                log.exception("sending %d events failed: retrying", len(batch))
                await asyncio.sleep(RETRY_SECONDS)
                continue
            self.sent += len(batch)
            batch = []

    def _payload(self, seq: int, event: Event) -> str | None:
        """The whole event when it fits, else a job event by reference, else None."""
        try:
            payload = encode(self.origin, seq, event)
        except (TypeError, orjson.JSONEncodeError):  # the hub could not send it either
            log.exception("%s event cannot be encoded for other nodes", event.type)
            self.dropped += 1
            return None
        if len(payload) <= MAX_PAYLOAD:
            return payload.decode()
        if (reference := encode_reference(self.origin, seq, event)) is not None:
            self.referenced += 1
            return reference.decode()
        self.too_large += 1
        log.warning("%s event of %d bytes is too large to send to other nodes",
                    event.type, len(payload))
        return None

    # -- in ---------------------------------------------------------------------------------

    def _on_payload(self, payload: str) -> None:
        self._inbox.append(payload)
        self._arrived.set()

    async def _catch_up_in_order(self, since: int) -> None:
        """The listener's reconnect hook: catch up between the notifications already in
        and those to come, and return when done."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._inbox.append(_CatchUp(since, done))
        self._arrived.set()
        await done

    async def _receive_forever(self) -> None:
        while True:
            await self._arrived.wait()
            self._arrived.clear()
            while self._inbox:
                item = self._inbox.popleft()
                if isinstance(item, _CatchUp):
                    await self._settle(item)
                    continue
                try:
                    await self._handle(item)
                except Exception:  # one bad notification must not stop the others
                    log.exception("could not handle a notification of %d bytes", len(item))

    async def _settle(self, item: _CatchUp) -> None:
        try:
            # Sequences start afresh: the hole the lost link left is what is read here.
            self._last_seq.clear()
            await self.jobs.catch_up(self._db, self._bus, item.since)
            await missed_invalidations(self._db, self._bus, item.since)
        except Exception as exc:
            if not item.done.done():
                item.done.set_exception(exc)
            return
        if not item.done.done():
            item.done.set_result(None)

    async def _handle(self, payload: str) -> None:
        msg = decode(payload)
        if msg.origin == self.origin or not self._in_sequence(msg):
            return
        arrival = await self._resolve(msg)
        if arrival is None or self.jobs.is_stale(msg.job_id, arrival[1]):
            return
        if msg.job_id is not None and arrival[1] is not None:
            self.jobs.remember(msg.job_id, arrival[1])
        self.received += 1
        self._bus.publish(arrival[0])

    def _in_sequence(self, msg: Message) -> bool:
        """False for a duplicate; counts (and logs) the numbers skipped."""
        last = self._last_seq.get(msg.origin)
        if last is not None and msg.seq <= last:
            self.duplicates += 1
            return False
        if last is not None and msg.seq > last + 1:
            self.gaps += msg.seq - last - 1
            log.warning("%d events of %s never arrived", msg.seq - last - 1, msg.origin)
        self._last_seq[msg.origin] = msg.seq
        return True

    async def _resolve(self, msg: Message) -> tuple[RemoteEvent, JobState | None] | None:
        """The event, reading its job when it came by reference (None: job deleted)."""
        if msg.event is not None:
            return msg.event, msg.state
        assert msg.job_id is not None
        job = await read_job(self._db, msg.job_id)
        return None if job is None else msg.resolve(job)
