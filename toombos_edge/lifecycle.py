"""Where the process is in its life, and the hooks a notifier (sd_notify) subscribes to.

started (database open) → ready (every component up; what ``/ready`` says) → serving (the
listening socket accepts: the "ready" log line, then the ``on_ready`` hooks) → stopping (a
signal or ``POST /admin/restart``: one deadline from here, then the ``on_stopping`` hooks).
Hooks are plain functions called on the loop; each must return at once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

Hook = Callable[[], None]


@dataclass
class Lifecycle:
    """The process's state; ``request_stop`` asks for a stop, the serving loop performs it."""

    started_monotonic: float = field(default_factory=time.monotonic)
    started: bool = False
    ready: bool = False
    serving: bool = False
    stopping: bool = False
    restarting: bool = False  #: the stop is the first half of a restart
    deadline: float | None = None  #: time.monotonic() by which the process is gone
    reserve: float = 0.0  #: the deadline's last seconds, kept for requeueing and closing
    on_ready: list[Hook] = field(default_factory=list)  #: serving: /ready true, port bound
    on_stopping: list[Hook] = field(default_factory=list)  #: the stop began (deadline set)
    #: Requests being handled (their tasks): a stop waits for them, then answers 503.
    inflight: set[asyncio.Task[Any]] = field(default_factory=set)
    #: Requests the stop gave up on: their pipeline answers 503 with Connection: close.
    abandoned: set[asyncio.Task[Any]] = field(default_factory=set)
    stop_requested: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def uptime(self) -> float:
        return time.monotonic() - self.started_monotonic

    def mark_serving(self, addresses: list[str]) -> None:
        """The listening sockets accept: log "ready" and run the ``on_ready`` hooks."""
        self.serving = True
        log.info("ready", extra={"listening": addresses})
        _run(self.on_ready, "ready")

    def request_stop(self, *, restart: bool = False) -> bool:
        """Ask for a stop (or a restart); False when one was already asked for."""
        if self.stop_requested.is_set():
            return False
        self.restarting = restart
        self.stop_requested.set()
        return True

    def begin_stop(self, timeout: float, reserve: float = 0.0) -> None:
        """The stop starts now and ends within ``timeout`` seconds, the last ``reserve`` of
        them kept for requeueing and closing: not ready any more."""
        self.deadline = time.monotonic() + timeout
        self.reserve = reserve
        self.ready, self.stopping = False, True
        _run(self.on_stopping, "stopping")

    def remaining(self, default: float) -> float:
        """Seconds left before the deadline (``default`` when no stop has begun)."""
        if self.deadline is None:
            return default
        return max(0.0, self.deadline - time.monotonic())

    def working_time(self, default: float = 0.0) -> float:
        """Seconds left for requests and jobs to finish (the reserve set aside)."""
        return max(0.0, self.remaining(default) - self.reserve)


def _run(hooks: list[Hook], name: str) -> None:
    for hook in hooks:
        try:
            hook()
        except Exception:  # a broken notifier must not stop a start or a stop
            log.exception("%s hook %r failed", name, hook)
