"""The WebSocket hub: which socket gets which event, bounded delivery, and closing.

The hub is one synchronous subscriber of the event bus. For each event it picks the
matching sockets from its indexes, frames the event once and writes the same bytes to each.
A socket whose send queue is full is closed with 1013 and counted; nothing is ever buffered
without bound. Dashboards also get a ``stats_update`` every ``TOOMBOS_WS_STATS_INTERVAL``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from aiohttp import WSCloseCode

from ..events import (
    CACHE_INVALIDATED,
    CONTENT_PUBLISHED,
    INGESTION_COMPLETE,
    INTERNAL,
    JOB_EVENTS,
    KEY_REVOKED,
    QUERY_COMPLETE,
    RESTARTING,
    STATS_UPDATE,
    WS_CONNECTION,
    Event,
    EventBus,
)
from ..ids import now_ms
from ..records.job import Job, JobStatus
from .connection import Connection, Endpoint, text_frame
from .gate import Gate
from .registry import Registry

log = logging.getLogger(__name__)

CONTENT_EVENTS = frozenset({CONTENT_PUBLISHED, INGESTION_COMPLETE, QUERY_COMPLETE,
                            CACHE_INVALIDATED})
TERMINAL_STATUSES = frozenset(status.value for status in JobStatus if status.terminal)


#: Events held for a socket while its current state is fetched (a few milliseconds).
MAX_HELD = 1000


class JobSource(Protocol):
    """What the hub needs of the job engine."""

    async def get(self, job_id: str) -> Job: ...

    def stats(self) -> dict[str, Any]: ...


class Hub:
    """Every open socket, indexed by what it listens to."""

    def __init__(
        self,
        bus: EventBus,
        gate: Gate,
        *,
        close_timeout: float,
        jobs: JobSource | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._bus = bus
        self.gate = gate
        self.jobs = jobs  #: the engine, for the stats frames (None: none in them)
        self._close_timeout = close_timeout
        self._clock = clock
        self.sockets = Registry()
        self._closing: dict[Connection, asyncio.Task[None]] = {}
        self._unsubscribe: Callable[[], None] | None = None
        self.shutdown_code: int = WSCloseCode.GOING_AWAY
        self.accepted = self.closed = self.slow_closed = 0
        self.events = self.messages = 0
        self._rates: dict[str, float] = {"events_per_second": 0.0, "messages_per_second": 0.0}
        self._rate_mark = (clock(), 0, 0)

    def __repr__(self) -> str:
        return (f"<Hub open={len(self.sockets.all)} accepted={self.accepted} "
                f"slow_closed={self.slow_closed} messages={self.messages}>")

    def start(self) -> None:
        self._unsubscribe = self._bus.subscribe(self.on_event)

    async def stop(self) -> None:
        """Leave the bus and finish every close still under way."""
        if self._unsubscribe is not None:
            self._unsubscribe()
        await self.close_all(self.shutdown_code)

    # -- registry ---------------------------------------------------------------------------

    def add(self, conn: Connection) -> None:
        self.sockets.add(conn)
        self.accepted += 1
        self._publish("accepted", conn)

    def remove(self, conn: Connection) -> None:
        if not self.sockets.remove(conn):
            return
        self.closed += 1
        if conn.close_code is None:
            conn.close_code = conn.ws.close_code or WSCloseCode.OK
            conn.close_reason = _client_reason(conn)
        self._publish("closed", conn, code=conn.close_code, reason=conn.close_reason,
                      duration_ms=now_ms() - conn.opened_at, sent=conn.sent)

    # -- delivery ---------------------------------------------------------------------------

    def on_event(self, event: Event) -> None:
        """The bus subscriber: route one event; returns at once."""
        if event.type in INTERNAL:
            if event.type == KEY_REVOKED:
                self.close_key(str(event.body["data"]["key_id"]))
            return
        self.events += 1
        if not self.sockets.all:
            return
        if event.address is not None:
            self.send_personal(event)
        elif event.type in JOB_EVENTS:
            self._job_event(event)
        elif event.type == RESTARTING:
            self.deliver(event, text_frame(event.encoded), self.sockets.all)
        else:
            frame = text_frame(event.encoded)
            self.deliver(event, frame, self.sockets.dashboards)
            if event.type in CONTENT_EVENTS:
                self.deliver(event, frame, self.sockets.content)

    def _job_event(self, event: Event) -> None:
        job = event.body.get("job") or {}
        frame = text_frame(event.encoded)
        self.deliver(event, frame, self.sockets.dashboards)
        self.deliver(event, frame, self.sockets.job_feeds)
        chosen = self.sockets.by_job.get(str(job.get("job_id")))
        if chosen:
            self.deliver(event, frame, chosen)
            if job.get("status") in TERMINAL_STATUSES:
                for conn in [c for c in chosen if c.endpoint is Endpoint.status]:
                    if conn.pending is None:  # a held socket closes after its first message
                        self.close(conn, WSCloseCode.OK, "job ended")

    def send_personal(self, event: Event) -> int:
        """Deliver an addressed event to that client's or session's sockets only."""
        assert event.address is not None
        targets = self.sockets.personal.get(event.address, ())
        if targets:
            self.deliver(event, text_frame(event.encoded), targets)
        return len(targets)

    def deliver(self, event: Event, frame: bytes, conns: Iterable[Connection]) -> None:
        slow = []
        sent = 0
        for conn in conns:
            if conn.pending is not None and len(conn.pending) < MAX_HELD:
                conn.pending.append(event)
            elif conn.pending is None and conn.send(frame):
                sent += 1
            else:
                slow.append(conn)
        self.messages += sent
        for conn in slow:
            self.slow_closed += 1
            log.info("closing slow WebSocket consumer %s (%d bytes queued)", conn.id,
                     conn.queued())
            self.close(conn, WSCloseCode.TRY_AGAIN_LATER, "slow consumer")

    def reply(self, conn: Connection, type_: str, data: dict[str, Any]) -> None:
        """One message to one socket (acks, pongs, errors)."""
        event = Event.data(type_, data)
        self.deliver(event, text_frame(event.encoded), (conn,))

    def send_now(self, conn: Connection, event: Event) -> None:
        """Write past the hold: a socket's first message, its current state."""
        if not conn.send(text_frame(event.encoded)):
            self.close(conn, WSCloseCode.TRY_AGAIN_LATER, "slow consumer")

    # -- closing ----------------------------------------------------------------------------

    def close(self, conn: Connection, code: int, reason: str) -> None:
        """Close a socket from the server side; the rest happens in a task."""
        if conn.close_code is not None:
            return
        conn.close_code, conn.close_reason = code, reason
        task = asyncio.get_running_loop().create_task(self._close(conn, code, reason))
        self._closing[conn] = task
        task.add_done_callback(lambda _: self._closing.pop(conn, None))

    async def wait_closed(self, conn: Connection) -> None:
        """Wait for a server-side close of this socket to finish (its handler must not
        return before: aiohttp would close it with 1000 first)."""
        task = self._closing.get(conn)
        if task is not None:
            await asyncio.shield(task)

    async def _close(self, conn: Connection, code: int, reason: str) -> None:
        try:
            async with asyncio.timeout(self._close_timeout):
                await conn.ws.close(code=code, message=reason.encode())
            return
        except (TimeoutError, ConnectionError):
            pass
        conn.abort()  # a peer that does not answer (or read) must not hold our memory

    def close_key(self, key_id: str) -> int:
        """Close every socket opened with this key (it was revoked)."""
        doomed = [conn for conn in self.sockets.all if conn.peer.key_id == key_id]
        for conn in doomed:
            self.close(conn, WSCloseCode.POLICY_VIOLATION, "API key revoked")
        return len(doomed)

    def prepare_restart(self) -> None:
        """Before a restart: tell every socket, and close them with 1012 instead of 1001."""
        self.shutdown_code = WSCloseCode.SERVICE_RESTART
        self._bus.publish(Event.data(RESTARTING, {"message": "the server is restarting"}))

    async def close_all(self, code: int | None = None) -> None:
        """Close every socket (1001 on shutdown) and wait for the closes, bounded."""
        code = self.shutdown_code if code is None else code
        reason = "server restarting" if code == WSCloseCode.SERVICE_RESTART else "server going away"
        for conn in list(self.sockets.all):
            self.close(conn, code, reason)
        if self._closing:
            await asyncio.wait(list(self._closing.values()), timeout=self._close_timeout + 1)
        for task in list(self._closing.values()):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    # -- stats ------------------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """The ``stats_update`` body: jobs, connections and rates."""
        engine = self.jobs.stats() if self.jobs is not None else {}
        return {
            "queue_depth": engine.get("queue_depth"),
            "running": engine.get("running"),
            "connections": self.connection_counts(),
            "rates": {**engine.get("rates", {}), **self._rates},
            "jobs": engine,
        }

    def connection_counts(self) -> dict[str, Any]:
        return {"total": len(self.sockets.all), "by_endpoint": self.sockets.by_endpoint(),
                "ips": len(self.gate.slots.counts()), "slow_closed": self.slow_closed}

    def tick_rates(self) -> None:
        now = self._clock()
        then, events, messages = self._rate_mark
        elapsed = max(now - then, 1e-9)
        self._rates = {"events_per_second": round((self.events - events) / elapsed, 3),
                       "messages_per_second": round((self.messages - messages) / elapsed, 3)}
        self._rate_mark = (now, self.events, self.messages)

    def broadcast_stats(self) -> None:
        self.tick_rates()
        if self.sockets.dashboards:
            event = Event.data(STATS_UPDATE, self.stats())
            self.deliver(event, text_frame(event.encoded), self.sockets.dashboards)

    async def run_stats(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                self.broadcast_stats()
            except Exception:
                log.exception("stats_update failed")

    def snapshot(self, limit: int) -> dict[str, Any]:
        """``GET /admin/connections``: counts, refusals and the first ``limit`` sockets."""
        conns = sorted(self.sockets.all, key=lambda c: c.id)[:limit]
        return {
            **self.connection_counts(),
            "per_ip": self.gate.slots.counts(),
            "limit_per_ip": self.gate.slots.limit,
            "accepted": self.accepted,
            "closed": self.closed,
            "refused": dict(self.gate.refused),
            "events": self.events,
            "messages": self.messages,
            "connections": [conn.to_json() for conn in conns],
        }

    def _publish(self, action: str, conn: Connection, **extra: Any) -> None:
        self._bus.publish(Event.data(WS_CONNECTION, {
            "action": action, "connection_id": conn.id, "endpoint": conn.endpoint.value,
            "target": conn.target, "ip": conn.peer.ip, "key_id": conn.peer.key_id,
            "auth": conn.peer.via, "origin": conn.peer.origin, **extra,
        }))


def _client_reason(conn: Connection) -> str:
    error = conn.ws.exception()
    if isinstance(error, TimeoutError):  # aiohttp's "no PONG received"
        return "heartbeat timeout"
    if error is not None:
        return f"error: {type(error).__name__}"
    return "client"
