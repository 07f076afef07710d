"""Speaking to systemd: sd_notify(3) over ``NOTIFY_SOCKET`` (the sockets of sd_listen_fds(3)
are taken in ``serving.py``, with those a restart hands on).

The protocol is one datagram of ``KEY=VALUE`` lines to a Unix socket, so it is written here
in a few lines rather than taken from a library. Nothing is sent when no supervisor set
``NOTIFY_SOCKET``. What is said, and when:

- ``READY=1`` when the lifecycle is serving (``/ready`` is true and the port bound);
- ``WATCHDOG=1`` every half ``WATCHDOG_USEC`` from a task on the event loop, so a loop that
  blocks stops the pings and systemd restarts the service;
- ``STATUS=`` with the queue depth every few seconds (``systemctl status`` shows it);
- ``STOPPING=1`` when the stop begins.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import AsyncIterator

from aiohttp import web

from .appkeys import ENGINE, LIFECYCLE, SETTINGS
from .lifecycle import Hook
from .settings import Supervisor

log = logging.getLogger(__name__)

STATUS_SECONDS = 5.0


class Notifier:
    """One datagram socket to the supervisor; a send never blocks and never raises."""

    def __init__(self, address: str) -> None:
        # "@name" is a socket in the abstract namespace, spelled with a NUL byte by the kernel.
        self._address = "\0" + address[1:] if address.startswith("@") else address
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        self._sock.setblocking(False)
        self.sent = 0
        self.failed = 0
        self.stopping = False  #: STOPPING=1 was said; nothing but pings follows it

    def send(self, *lines: str) -> bool:
        """Send ``lines`` as one message; False (and a warning) if the supervisor is gone."""
        try:
            self._sock.sendto("\n".join(lines).encode(), self._address)
        except OSError as exc:
            self.failed += 1
            if self.failed == 1:  # once: a missing supervisor must not flood the log
                log.warning("cannot notify the supervisor: %s", exc.strerror or exc)
            return False
        self.sent += 1
        return True

    def close(self) -> None:
        self._sock.close()

    def __repr__(self) -> str:
        return f"<Notifier sent={self.sent} failed={self.failed}>"


def notifier_for(supervisor: Supervisor) -> Notifier | None:
    return Notifier(supervisor.notify_socket) if supervisor.notify_socket else None


async def notify_ctx(app: web.Application) -> AsyncIterator[None]:
    """The first lifetime, stopped last: pings go on until everything else has stopped."""
    supervisor = app[SETTINGS].supervisor
    notifier = notifier_for(supervisor)
    if notifier is None:
        yield
        return
    lifecycle = app[LIFECYCLE]
    hooks: tuple[tuple[list[Hook], Hook], ...] = (
        (lifecycle.on_ready, lambda: _ready(notifier)),
        (lifecycle.on_stopping, lambda: _stopping(notifier)),
    )
    for hook_list, hook in hooks:
        hook_list.append(hook)
    tasks = [asyncio.create_task(_report_status(notifier, app), name="sd-status")]
    if supervisor.watchdog_usec:
        interval = supervisor.watchdog_usec / 2e6
        tasks.append(asyncio.create_task(_watchdog(notifier, interval), name="sd-watchdog"))
    log.info("notifying the supervisor", extra={"watchdog_usec": supervisor.watchdog_usec})
    try:
        yield
    finally:
        _stopping(notifier)  # in case nothing marked the stop
        for hook_list, hook in hooks:
            hook_list.remove(hook)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        notifier.close()


def _ready(notifier: Notifier) -> None:
    notifier.send("READY=1", "STATUS=ready")


def _stopping(notifier: Notifier) -> None:
    """STOPPING=1, once."""
    if not notifier.stopping:
        notifier.stopping = True
        notifier.send("STOPPING=1", "STATUS=stopping")


async def _watchdog(notifier: Notifier, interval: float) -> None:
    while True:
        notifier.send("WATCHDOG=1")
        await asyncio.sleep(interval)


async def _report_status(notifier: Notifier, app: web.Application) -> None:
    while True:
        await asyncio.sleep(STATUS_SECONDS)
        engine = app.get(ENGINE)
        if engine is not None and not notifier.stopping:
            stats = engine.stats()
            notifier.send(f"STATUS={stats['running']} running, {stats['queue_depth']} queued")
