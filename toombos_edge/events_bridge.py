"""Events between nodes on one PostgreSQL database: each node's bus sees every node's events.

A :class:`NodeBridge` is a subscriber of its node's :class:`~.events.EventBus` and a
publisher on it:

* **Out.** The events other nodes' clients must see (:data:`SHARED`: job events, content
  events, announcements, key revocations) are numbered (a sequence per node run) and
  NOTIFYed in that order, in batches, from one task. A payload is
  ``{"o": origin, "s": seq, "ts": ms, "u": job's updated_at, "e": the event's JSON}``,
  reusing the bytes the hub sends (encoded once). When that would pass
  :data:`~.store.postgres.notify.MAX_PAYLOAD` (a job with large params or output), a job
  event is sent by reference, ``{"o", "s", "ts", "t": type, "j": job id}``, and the
  receiver reads the job from the jobs table: it then shows the job as it is when read,
  which may be a later state than the event's. Any other event too large is dropped, logged
  and counted (none of today's comes near 7,900 bytes).
* **In.** Notifications arrive on a connection of the listener's own and are handled one
  at a time, in arrival order (a reference is read before the next one is handled), so the
  events of one job keep their order. Each is re-published as a :class:`RemoteEvent`
  (``origin``, ``seq``): the bridge never sends one on, so nothing echoes. A node's own
  notifications are ignored, and a sequence number seen before is a duplicate (a batch
  sent again after its commit's answer was lost); a number skipped is counted in ``gaps``
  and logged (the sender dropped events past :data:`MAX_QUEUED`). Remote
  events carry JSON bodies, never a job object (``subject`` is None): subscribers that
  count jobs from the object (the metrics) count each job on its own node only.
* **Catch-up.** Notifications sent while the listening connection is down are lost. On
  reconnecting, the bridge reads the jobs written since the link was last known alive
  (less a margin for commit delay and clock skew) and publishes each one's current state
  (``job_update``, or the final event of a job that ended), skipping states this bus has
  already carried. A notification handled after the catch-up that is not newer than the
  state just published for its job is dropped, so a job does not step backwards (this
  compares ``updated_at`` written by different nodes: the clocks must agree, as the
  leases already require). Events other than a job's are not caught up.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from .errors import DatabaseUnavailable
from .events import (
    ANNOUNCEMENT,
    CACHE_INVALIDATED,
    CONTENT_PUBLISHED,
    INGESTION_COMPLETE,
    JOB_CANCELLED,
    JOB_COMPLETED,
    JOB_EVENTS,
    JOB_FAILED,
    JOB_UPDATE,
    KEY_REVOKED,
    QUERY_COMPLETE,
    Address,
    Event,
    EventBus,
)
from .records.job import Job, JobStatus
from .store.postgres.database import PgDatabase
from .store.postgres.notify import (
    MAX_PAYLOAD,
    LinkState,
    Listener,
    changed_since,
    notify,
    read_job,
)

log = logging.getLogger(__name__)

#: The events every node's clients must see, whichever node made them.
SHARED = JOB_EVENTS | {CONTENT_PUBLISHED, INGESTION_COMPLETE, QUERY_COMPLETE,
                       CACHE_INVALIDATED, ANNOUNCEMENT, KEY_REVOKED}
MAX_QUEUED = 100_000  #: events waiting to be sent; past it they are dropped and counted
BATCH = 500  #: notifications per statement
CATCH_UP_LIMIT = 10_000  #: jobs a catch-up publishes at most (the newest writes are last)
SEEN = 10_000  #: job states remembered, so that a catch-up skips what the bus carried
RETRY_SECONDS = 0.5  #: between attempts to send while the database does not answer
CATCH_UP = "catch-up"  #: the origin of the events a catch-up publishes
_FINAL = {JobStatus.completed: JOB_COMPLETED, JobStatus.partial: JOB_COMPLETED,
          JobStatus.failed: JOB_FAILED, JobStatus.cancelled: JOB_CANCELLED}

JobState = tuple[int, str]  #: (updated_at, status): one written state of a job


class RemoteEvent(Event):
    """An event another node published, re-published here (or a caught-up job state)."""

    __slots__ = ("origin", "seq")

    def __init__(self, type_: str, body: dict[str, Any], timestamp: int,
                 address: Address | None, *, origin: str, seq: int) -> None:
        super().__init__(type_, body, timestamp, address)
        self.origin = origin  #: "<node id>/<run>", or :data:`CATCH_UP`
        self.seq = seq  #: its number in the origin's sequence (0 for a catch-up)


def is_remote(event: Event) -> bool:
    """True for an event that came from another node (its own node logged it already)."""
    return isinstance(event, RemoteEvent)


@dataclass(slots=True)
class _CatchUp:
    since: int
    done: asyncio.Future[None]


@dataclass(frozen=True, slots=True)
class _Arrival:
    event: RemoteEvent
    job: tuple[str, JobState] | None  #: a job event's job id and state


def _job_state(event: Event) -> tuple[str, JobState] | None:
    job = event.subject
    if isinstance(job, Job):
        return job.id, (job.updated_at, job.status.value)
    return None


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
        self._seen: OrderedDict[str, JobState] = OrderedDict()
        self._caught: dict[str, JobState] = {}
        self._listener = Listener(db.url, self._on_payload, self._catch_up_in_order,
                                  ping_seconds=ping_seconds, margin_ms=margin_ms)
        self._tasks: list[asyncio.Task[None]] = []
        self._unsubscribe: Callable[[], None] | None = None
        self.sent = self.referenced = self.received = self.caught_up = 0
        self.dropped = self.too_large = self.duplicates = self.gaps = self.stale = 0

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
                "caught_up": self.caught_up, "queued": len(self._outbox),
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
        """Leave the bus, send what is queued (bounded), stop listening."""
        if self._unsubscribe is not None:
            self._unsubscribe()
        if self._outbox and self._tasks:
            self._drained.clear()
            self._wanted.set()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(flush_seconds):
                    await self._drained.wait()
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._listener.close()

    # -- out --------------------------------------------------------------------------------

    def on_event(self, event: Event) -> None:
        """The bus subscriber: number and queue a shared local event; returns at once."""
        if isinstance(event, RemoteEvent) or event.type not in SHARED:
            return
        if (state := _job_state(event)) is not None:
            self._remember(*state)
        self._seq += 1
        if len(self._outbox) >= self._max:
            self.dropped += 1  # receivers see the gap in the sequence
            return
        self._outbox.append((self._seq, event))
        self._wanted.set()

    async def _send_forever(self) -> None:
        while True:
            await self._wanted.wait()
            self._wanted.clear()
            while self._outbox:
                batch = [self._outbox[i] for i in range(min(BATCH, len(self._outbox)))]
                payloads = [p for seq, event in batch if (p := self._encode(seq, event))]
                try:
                    await notify(self._db, payloads)
                except DatabaseUnavailable as exc:  # keep the order and try again
                    log.warning("sending %d events failed (%s): retrying", len(batch), exc)
                    await asyncio.sleep(RETRY_SECONDS)
                    continue
                for _ in batch:
                    self._outbox.popleft()
                self.sent += len(payloads)
            self._drained.set()

    def _encode(self, seq: int, event: Event) -> str | None:
        head: dict[str, Any] = {"o": self.origin, "s": seq, "ts": event.timestamp}
        if event.address is not None:
            head["a"] = list(event.address)
        state = _job_state(event)
        if state is not None:
            head["u"] = state[1][0]
        try:
            payload = orjson.dumps({**head, "e": orjson.Fragment(event.encoded)})
        except (TypeError, orjson.JSONEncodeError):  # the hub could not send it either
            log.exception("%s event cannot be encoded for other nodes", event.type)
            self.dropped += 1
            return None
        if len(payload) <= MAX_PAYLOAD:
            return payload.decode()
        job_id = state[0] if state else (event.body.get("job") or {}).get("job_id")
        if event.type in JOB_EVENTS and job_id:
            self.referenced += 1
            return orjson.dumps({**head, "t": event.type, "j": job_id}).decode()
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
            await self._catch_up(item.since)
        except Exception as exc:
            if not item.done.done():
                item.done.set_exception(exc)
            return
        if not item.done.done():
            item.done.set_result(None)

    async def _handle(self, payload: str) -> None:
        msg = orjson.loads(payload)
        origin, seq = str(msg["o"]), int(msg["s"])
        if origin == self.origin:
            return
        last = self._last_seq.get(origin)
        if last is not None and seq <= last:
            self.duplicates += 1
            return
        if last is not None and seq > last + 1:
            self.gaps += seq - last - 1
            log.warning("%d events of %s never arrived", seq - last - 1, origin)
        self._last_seq[origin] = seq
        arrival = await self._decode(msg, origin, seq)
        if arrival is None or self._is_stale(arrival):
            return
        if arrival.job is not None:
            self._remember(*arrival.job)
        self.received += 1
        self._bus.publish(arrival.event)

    async def _decode(self, msg: dict[str, Any], origin: str, seq: int) -> _Arrival | None:
        address = (str(msg["a"][0]), str(msg["a"][1])) if "a" in msg else None
        if "j" in msg:  # by reference: the job as it is now
            job = await read_job(self._db, str(msg["j"]))
            if job is None:
                return None
            event = RemoteEvent(str(msg["t"]), {"job": job.to_json()}, int(msg["ts"]),
                                address, origin=origin, seq=seq)
            return _Arrival(event, (job.id, (job.updated_at, job.status.value)))
        body = dict(msg["e"])
        type_ = str(body.pop("type"))
        body.pop("timestamp", None)
        event = RemoteEvent(type_, body, int(msg["ts"]), address, origin=origin, seq=seq)
        job_json = body.get("job")
        if type_ in JOB_EVENTS and isinstance(job_json, dict) and "u" in msg:
            return _Arrival(event, (str(job_json["job_id"]),
                                    (int(msg["u"]), str(job_json["status"]))))
        return _Arrival(event, None)

    def _is_stale(self, arrival: _Arrival) -> bool:
        """Not newer than the state a catch-up just published for its job."""
        if arrival.job is None or not self._caught:
            return False
        job_id, (updated_at, status) = arrival.job
        caught = self._caught.get(job_id)
        if caught is None:
            return False
        if updated_at < caught[0] or (updated_at, status) == caught:
            self.stale += 1
            return True
        del self._caught[job_id]
        return False

    async def _catch_up(self, since: int) -> None:
        jobs = await changed_since(self._db, since, CATCH_UP_LIMIT)
        if len(jobs) == CATCH_UP_LIMIT:
            log.warning("catch-up stopped at %d jobs: clients should list jobs again",
                        CATCH_UP_LIMIT)
        self._caught = {}
        # Sequences start afresh: the hole the lost link left is what was just read.
        self._last_seq.clear()
        for job in jobs:
            state = (job.updated_at, job.status.value)
            if self._seen.get(job.id) == state:
                continue
            self._caught[job.id] = state
            self._remember(job.id, state)
            self.caught_up += 1
            self._bus.publish(RemoteEvent(_FINAL.get(job.status, JOB_UPDATE),
                                          {"job": job.to_json()}, job.updated_at, None,
                                          origin=CATCH_UP, seq=0))

    def _remember(self, job_id: str, state: JobState) -> None:
        seen = self._seen
        seen[job_id] = state
        seen.move_to_end(job_id)
        if len(seen) > SEEN:
            seen.popitem(last=False)
