"""``POST /admin/restart``: one at a time, at most one per interval, announced.

The request only asks: it records the time (in the data dir, so the interval holds across
the restart itself and under any supervisor), publishes ``restart_requested`` for the
activity log, tells every WebSocket (``restarting``; they close with 1012), then asks the
lifecycle for a restart. :mod:`.serving` performs it once the answer is on its way.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .errors import Conflict
from .events import RESTART_REQUESTED, Event, EventBus
from .ids import iso, now_ms
from .lifecycle import Lifecycle
from .ratelimit import SERVER, Policy

RESTART_STAMP = "last-restart"  #: in the data dir: when the last restart was asked for


class Restarts:
    def __init__(
        self,
        lifecycle: Lifecycle,
        bus: EventBus,
        stamp: Path,
        *,
        min_interval: float,
        mode: str,
        announce: Callable[[], None],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._lifecycle, self._bus, self._stamp = lifecycle, bus, stamp
        self._min_interval, self.mode = min_interval, mode
        self._announce, self._clock = announce, clock
        self._asked = False
        self._refusing = False  #: refused since the last restart: the activity log has it

    def __repr__(self) -> str:
        return f"<Restarts mode={self.mode} asked={self._asked}>"

    async def request(self, requested_by: str) -> dict[str, Any]:
        """Ask for a restart; raises Conflict (one under way) or RateLimited."""
        if self._asked or self._lifecycle.stop_requested.is_set():
            raise Conflict("a restart or a stop is already under way")
        self._asked = True  # before any await: a second request meanwhile gets 409
        try:
            now = self._clock()
            await self._check_interval(now)
            await asyncio.to_thread(self._stamp.write_text, f"{now:.3f}\n")
        except BaseException:
            self._asked = False
            raise
        at = now_ms()
        self._bus.publish(Event.data(RESTART_REQUESTED, {"requested_by": requested_by,
                                                         "mode": self.mode}))
        self._announce()
        # Once this request's answer is written: the stop waits for requests in flight.
        asyncio.get_running_loop().call_soon(lambda: self._lifecycle.request_stop(restart=True))
        return {"status": "restarting", "mode": self.mode, "requested_at": iso(at),
                "message": "the server restarts; WebSockets close with 1012, reconnect"}

    async def _check_interval(self, now: float) -> None:
        last = await asyncio.to_thread(self._last)
        wait = last + self._min_interval - now
        if wait > 0:
            # The interval is kept in the data dir, not in a bucket in memory: a restart
            # would empty that (the very thing being limited).
            first, self._refusing = not self._refusing, True
            raise Policy("restart", 1, self._min_interval).refusal(
                SERVER, wait, first=first, message=f"the server restarted less than "
                f"{self._min_interval:g} s ago")

    def _last(self) -> float:
        try:
            return float(self._stamp.read_text())
        except (OSError, ValueError):
            return -math.inf
