"""One engine among several on one database (PostgreSQL): what it must hear of the others.

The queue itself is shared by the database (claims skip the rows another node holds). What
the database cannot tell an engine by itself comes as other nodes' events on the bus, which
the events bridge carries between nodes (:mod:`..events_bridge`):

* a job became due on another node (submitted, retried, released, its dependency ended):
  look for due jobs now, instead of at the next poll;
* the queue was paused or resumed on another node: pause or resume here too, without
  announcing it again (the node that was asked announced and logged it); a node that
  starts asks the others, and a paused one answers, so it starts paused too (within a
  moment: a job or two may start first);
* a cancel of a job running on this node was asked of another node: cancel it here, where
  its worker runs. The node that was asked waits for the job's end event, bounded.

Events can be lost while a node's listening connection is down, so the engine also polls
(``JobEngine(poll_seconds=…)``): due jobs and leases that ran out (a dead node's) are found
within that time whatever happens to the events.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..errors import Conflict, NotFound
from ..events import (
    CANCEL_REQUESTED,
    JOB_EVENTS,
    QUEUE_PAUSED,
    QUEUE_RESUMED,
    QUEUE_STATE,
    QUEUE_STATE_ASKED,
    Event,
    EventBus,
)
from ..events_wire import is_remote
from ..records.job import JobStatus
from .tasks import Tasks

if TYPE_CHECKING:
    from .engine import JobEngine

log = logging.getLogger(__name__)

CANCEL_WAIT_SECONDS = 10.0  #: how long a cancel waits for the node running the job
_DUE = frozenset({JobStatus.pending.value})
_ENDED = frozenset(status.value for status in JobStatus if status.terminal)


class Peers:
    """Subscribes ``engine`` to the other nodes' events on ``bus``; see the module
    docstring. :meth:`ask_cancel` is what the engine calls for a job another node runs."""

    def __init__(self, engine: JobEngine, bus: EventBus, *,
                 cancel_wait: float = CANCEL_WAIT_SECONDS) -> None:
        self._engine, self._bus = engine, bus
        self._cancel_wait = cancel_wait
        self._ended: dict[str, list[asyncio.Future[None]]] = {}  #: cancels waiting, by job
        self._cancels = Tasks(lambda: None)
        self._unsubscribe: Callable[[], None] | None = None
        self.cancels_asked = self.cancels_done = 0

    def __repr__(self) -> str:
        return (f"<Peers asked={self.cancels_asked} done_here={self.cancels_done} "
                f"waiting={len(self._ended)}>")

    def start(self) -> None:
        self._unsubscribe = self._bus.subscribe(self.on_event)
        self._engine.ask_owner_to_cancel = self.ask_cancel
        self._bus.publish(Event.data(QUEUE_STATE_ASKED, {}))

    async def close(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        self._engine.ask_owner_to_cancel = None
        await self._cancels.wait()

    def on_event(self, event: Event) -> None:
        """The bus subscriber: acts on other nodes' events only; returns at once."""
        if not is_remote(event):
            return
        if event.type in JOB_EVENTS:
            self._on_job(event.body.get("job"))
        elif event.type == QUEUE_PAUSED:
            self._engine.pause(announce=False)
        elif event.type == QUEUE_RESUMED:
            self._engine.resume(announce=False)
        elif event.type == QUEUE_STATE_ASKED and self._engine.paused:
            self._bus.publish(Event.data(QUEUE_STATE, {"paused": True}))
        elif event.type == QUEUE_STATE and event.body.get("data", {}).get("paused"):
            self._engine.pause(announce=False)
        elif event.type == CANCEL_REQUESTED:
            job_id = str(event.body.get("data", {}).get("job_id", ""))
            if self._engine.holds(job_id):
                self._cancels.spawn(self._cancel_here(job_id), f"cancel-{job_id}")

    def _on_job(self, job: Any) -> None:
        if not isinstance(job, dict):
            return
        status = job.get("status")
        if status in _DUE:
            self._engine.wake()
        elif status in _ENDED:
            for waiter in self._ended.pop(str(job.get("job_id")), []):
                if not waiter.done():
                    waiter.set_result(None)

    async def _cancel_here(self, job_id: str) -> None:
        with contextlib.suppress(Conflict, NotFound):  # it ended meanwhile
            await self._engine.cancel(job_id)
            self.cancels_done += 1

    async def ask_cancel(self, job_id: str) -> bool:
        """Ask the node running ``job_id`` to cancel it; True once it ended (cancelled, or
        ended otherwise meanwhile), False if no node said so within the wait."""
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._ended.setdefault(job_id, []).append(waiter)
        self.cancels_asked += 1
        self._bus.publish(Event.data(CANCEL_REQUESTED, {"job_id": job_id}))
        try:
            await asyncio.wait_for(waiter, self._cancel_wait)
        except TimeoutError:
            return False
        finally:
            waiters = self._ended.get(job_id, [])
            if waiter in waiters:
                waiters.remove(waiter)
            if not waiters:
                self._ended.pop(job_id, None)
        return True
