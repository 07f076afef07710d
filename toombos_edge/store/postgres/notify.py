"""LISTEN/NOTIFY for events between nodes: sending, a listening link that heals, and reads.

PostgreSQL delivers a ``NOTIFY`` to every session that ``LISTEN``s on its channel, after
the sending transaction commits, in the order sent from one session; a payload holds at
most 8,000 bytes. What goes in a payload, and what a node does with one, is the events
bridge's business (``events_bridge.py``); this module only moves strings and reads jobs.

The listening side holds a connection of its own, never one of the pool: a ``LISTEN`` lives
as long as its session, and a pooled connection is reset when it goes back. When that
connection is lost (the server restarted, the backend was terminated, the network broke),
notifications sent meanwhile are gone for good: :class:`Listener` reconnects with backoff
and then hands its owner the time from which to catch up, read from the tables.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import asyncpg

from ...errors import DatabaseUnavailable
from ...logs import redacted_url
from ...records.job import Job
from .jobs_sql import COLUMNS, row_to_job
from .migrate import CONNECT_SECONDS

if TYPE_CHECKING:
    from .database import PgDatabase
    from .migrate import Connection

log = logging.getLogger(__name__)

CHANNEL = "toombos_events"
#: The most a payload may hold (PostgreSQL's limit is 8,000 bytes, less a little room).
MAX_PAYLOAD = 7900
#: Notifications in order, one statement per batch: a function scan of the array calls
#: pg_notify row by row, and one session's notifications are delivered in the order sent.
_NOTIFY = "SELECT pg_notify($1, payload) FROM unnest($2::text[]) AS payload"
_LOST = (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError,
         asyncpg.InternalClientError)


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


async def notify(db: PgDatabase, payloads: Sequence[str], channel: str = CHANNEL) -> None:
    """Send ``payloads`` in order on ``channel``, in one statement (one transaction);
    raises DatabaseUnavailable when the database does not answer (then they may or may
    not have been sent: the commit's answer can be what was lost)."""
    try:
        await db.execute(_NOTIFY, channel, list(payloads))
    except _LOST as exc:
        raise DatabaseUnavailable(f"cannot notify: {type(exc).__name__}: {exc}") from None


async def read_job(db: PgDatabase, job_id: str) -> Job | None:
    """The job as it is now; None when it was deleted."""
    row = await db.fetchrow(f"SELECT {COLUMNS} FROM jobs WHERE id = $1", job_id)
    return None if row is None else row_to_job(row)


async def changed_since(db: PgDatabase, since: int, limit: int) -> list[Job]:
    """Up to ``limit`` jobs written at or after ``since`` (ms), oldest write first.

    No index serves ``updated_at``: this runs once per lost connection, and an index
    would cost every job update (each changes ``updated_at``) to save that one scan.
    """
    rows = await db.fetch(f"SELECT {COLUMNS} FROM jobs WHERE updated_at >= $1 "
                          "ORDER BY updated_at, id LIMIT $2", since, limit)
    return [row_to_job(row) for row in rows]


@dataclass(frozen=True, slots=True)
class LinkState:
    """The listening link as a health check shows it."""

    healthy: bool
    since: int  #: ms since the epoch: when it entered this state
    reason: str  #: "listening", or what went wrong

    def to_json(self) -> dict[str, object]:
        return {"healthy": self.healthy, "since": self.since, "reason": self.reason}


class Listener:
    """``LISTEN`` on ``channel`` over a connection of its own to ``url``, kept open.

    Each notification's payload goes to ``on_payload`` (synchronous, in arrival order).
    When the link was lost and is back, ``on_reconnect(since)`` is awaited before the link
    reports healthy again: ``since`` is when the link was last known alive, less
    ``margin_ms`` (a write is committed a little after the time it records, and nodes'
    clocks differ a little), so the owner catches up on what it may have missed.
    """

    def __init__(
        self,
        url: str,
        on_payload: Callable[[str], None],
        on_reconnect: Callable[[int], Awaitable[None]],
        *,
        channel: str = CHANNEL,
        ping_seconds: float = 5.0,
        backoff: tuple[float, float] = (0.2, 30.0),
        margin_ms: int = 5000,
        clock: Callable[[], int] = _now_ms,
    ) -> None:
        self._url, self._channel = url, channel
        self._on_payload, self._on_reconnect = on_payload, on_reconnect
        self._ping, self._backoff, self._margin = ping_seconds, backoff, margin_ms
        self._clock = clock
        self._conn: Connection | None = None
        self._task: asyncio.Task[None] | None = None
        self.alive_at = 0  #: ms: the last sign of life of the link (a notification, a ping)
        self.state = LinkState(False, clock(), "not started")
        self.reconnects = 0

    def __repr__(self) -> str:
        return (f"<Listener {redacted_url(self._url)} healthy={self.state.healthy} "
                f"reconnects={self.reconnects}>")

    @property
    def backend_pid(self) -> int | None:
        """The server process of the listening connection (pg_stat_activity's pid)."""
        return None if self._conn is None else self._conn.get_server_pid()

    async def start(self) -> None:
        """Connect and listen (raises DatabaseUnavailable), then keep the link up."""
        try:
            await self._connect()
        except _LOST as exc:
            raise DatabaseUnavailable(
                f"cannot listen on {redacted_url(self._url)}: {exc}") from None
        self._set(True, "listening")
        self._task = asyncio.get_running_loop().create_task(self._run(), name="pg-listener")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._drop()
        self._set(False, "closed")

    async def _connect(self) -> None:
        conn = await asyncpg.connect(self._url, timeout=CONNECT_SECONDS)
        try:
            await conn.add_listener(self._channel, self._notified)
        except BaseException:
            conn.terminate()
            raise
        self._conn = conn
        self.alive_at = self._clock()

    def _notified(self, _conn: object, _pid: int, _channel: str, payload: object) -> None:
        self.alive_at = self._clock()
        self._on_payload(str(payload))

    async def _run(self) -> None:
        while True:
            reason = await self._hold()
            log.warning("lost the listening connection (%s): reconnecting", reason)
            self._set(False, reason)
            since = self.alive_at - self._margin
            await self._drop()
            await self._reconnect()
            try:
                await self._on_reconnect(since)
            except Exception as exc:  # the link is up but the catch-up failed: start over
                log.exception("catching up after a reconnect failed")
                self._set(False, f"catch-up failed: {exc}")
                await self._drop()
                continue
            self.reconnects += 1
            self._set(True, "listening")
            log.info("listening again; caught up from %d", since)

    async def _hold(self) -> str:
        """Wait until the link is lost (the connection closed, or a ping failed); why."""
        conn = self._conn
        if conn is None:
            return "not connected"
        lost = asyncio.Event()
        conn.add_termination_listener(lambda _c: lost.set())
        while not conn.is_closed():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._ping):
                    await lost.wait()
                return "connection lost"
            try:
                async with asyncio.timeout(self._ping):
                    await conn.fetchval("SELECT 1")
            except _LOST as exc:
                return f"ping failed: {type(exc).__name__}: {exc}"
            self.alive_at = self._clock()
        return "connection lost"

    async def _reconnect(self) -> None:
        """Connect again: at once the first time, then after waits doubling to the max."""
        delay, ceiling = 0.0, self._backoff[1]
        while True:
            if delay:
                await asyncio.sleep(delay)  # backoff between attempts
            try:
                await self._connect()
                return
            except _LOST as exc:
                self._set(False, f"reconnecting: {type(exc).__name__}: {exc}")
            delay = min(ceiling, max(delay * 2, self._backoff[0]))

    async def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None and not conn.is_closed():
            conn.terminate()  # no goodbye over a link that may be dead

    def _set(self, healthy: bool, reason: str) -> None:
        """``since`` moves only when ``healthy`` changes; the reason says the latest."""
        since = self.state.since if healthy == self.state.healthy else self._clock()
        self.state = LinkState(healthy, since, reason)
