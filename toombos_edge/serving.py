"""Serving: the listening sockets, the run until a signal or a restart, and the stop.

A stop (SIGTERM, SIGINT, or the first half of ``POST /admin/restart``) has one deadline,
``shutdown_timeout`` from its start. At once: no new connection is accepted, the engine
stops claiming jobs, WebSockets close (1001, or 1012 for a restart). Then requests in flight
and running jobs share the time left less a reserve; a request still in flight at the end
is answered 503 with ``Connection: close``, a job still running goes back to pending with
its attempt not counted. The components close in the reserve. A thread watches the
deadline: whatever still runs then (a blocked loop, a connection that will not close), the
process logs it and exits, or replaces itself for a restart.

A restart in ``exec`` mode replaces the process with a new one (same pid) that inherits
the listening sockets the systemd way (``LISTEN_FDS``/``LISTEN_PID``, from fd 3): clients
that connect meanwhile wait in the socket's backlog, none is refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import gc
import logging
import os
import signal
import socket
import ssl
import sys
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any, NoReturn

from aiohttp import web

from .appkeys import LIFECYCLE, SETTINGS
from .lifecycle import Lifecycle

log = logging.getLogger(__name__)

LISTEN_FDS_START = 3  #: sd_listen_fds(3): passed sockets start at fd 3
EXIT_RESTART = 75  #: restart_mode "exit": the supervisor starts the server again
EXIT_FORCED = 1  #: the stop passed its deadline
BACKLOG = 1024  #: connections that may wait while a restart brings the new process up
RESERVE_MAX = 1.0  #: seconds of the deadline kept for requeueing jobs and closing
FINAL_REQUEST_WAIT = 0.5  #: seconds a request given up on gets to send its 503


def reserve(timeout: float) -> float:
    """The part of a stop's deadline kept for requeueing and closing (a fifth, at most 1 s)."""
    return min(RESERVE_MAX, timeout / 5)


# -- listening sockets --------------------------------------------------------------------


def listening_sockets(host: str, port: int, passed: int) -> list[socket.socket]:
    """The ``passed`` sockets handed over by systemd or a restart (``LISTEN_FDS``, read by
    ``Settings.supervisor`` when ``LISTEN_PID`` names this process), else new ones."""
    return inherited_sockets(passed) or bind(host, port)


def inherited_sockets(count: int) -> list[socket.socket]:
    """Sockets passed at fd 3 onwards (sd_listen_fds(3))."""
    sockets = []
    for fd in range(LISTEN_FDS_START, LISTEN_FDS_START + count):
        sock = socket.socket(fileno=fd)
        sock.set_inheritable(False)
        sock.setblocking(False)
        sockets.append(sock)
    if count:
        log.info("listening on %d inherited sockets", count)
    return sockets


def bind(host: str, port: int) -> list[socket.socket]:
    """Listen on every address ``host`` resolves to (as aiohttp's TCPSite would)."""
    infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM,
                               flags=socket.AI_PASSIVE)
    sockets: list[socket.socket] = []
    try:
        for family, kind, proto, _name, address in dict.fromkeys(infos):
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            try:
                sock.bind(address)
            except OSError as exc:  # worded as asyncio's create_server words it
                raise OSError(exc.errno, f"error while attempting to bind on address "
                              f"{address!r}: {(exc.strerror or '').lower()}") from None
            sock.listen(BACKLOG)
            sock.setblocking(False)
    except OSError:
        for sock in sockets:
            sock.close()
        raise
    return sockets


# -- the deadline ---------------------------------------------------------------------------


class Deadline:
    """A daemon thread that ends the process at the stop's deadline, whatever the loop does
    (blocked, or waiting on something that will not close), and whatever the interpreter
    does (its exit waits for non-daemon threads: a database connection never closed)."""

    def __init__(self) -> None:
        self._timer: threading.Timer | None = None
        self.finish: Callable[[], NoReturn] = lambda: _exit(EXIT_FORCED)
        self.phase = "starting the stop"

    def arm(self, seconds: float) -> None:
        """Start counting (once: a later call keeps the first deadline)."""
        if self._timer is None:
            self._timer = threading.Timer(seconds, self._fire)
            self._timer.daemon = True
            self._timer.start()

    def _fire(self) -> None:
        log.error("the stop passed its deadline while %s; exiting anyway", self.phase)
        self.finish()


def flush_logs() -> None:
    for stream in [*logging.getLogger().handlers, sys.stdout, sys.stderr]:
        with contextlib.suppress(Exception):  # nothing is left to report it to
            stream.flush()


def _exit(code: int) -> NoReturn:
    flush_logs()
    os._exit(code)


def exec_restart(fds: list[int]) -> NoReturn:
    """Replace this process with a new server (same pid, same arguments) that inherits
    ``fds`` as its listening sockets, from fd 3."""
    flush_logs()
    high = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 64) for fd in fds]  # clear of 3…3+n
    for offset, fd in enumerate(high):
        os.dup2(fd, LISTEN_FDS_START + offset, inheritable=True)
    env = dict(os.environ, LISTEN_FDS=str(len(fds)), LISTEN_PID=str(os.getpid()))
    env.pop("LISTEN_FDNAMES", None)
    os.execve(sys.executable, [sys.executable, *sys.orig_argv[1:]], env)  # noqa: S606


# -- running --------------------------------------------------------------------------------


def run(app: web.Application, sockets: list[socket.socket], loop: asyncio.AbstractEventLoop,
        ssl_context: ssl.SSLContext | None = None, **runner_args: Any) -> int:
    """Serve ``app`` on ``sockets`` (HTTPS with ``ssl_context``) until stopped; returns the
    exit code, or execs."""
    lifecycle, deadline = app[LIFECYCLE], Deadline()
    settings = app[SETTINGS]
    asyncio.set_event_loop(loop)
    _handle_signals(loop, lifecycle, deadline, settings.shutdown_timeout)
    try:
        kept = loop.run_until_complete(_serve(app, sockets, deadline, ssl_context,
                                              runner_args))
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.run_until_complete(loop.shutdown_default_executor())  # its threads end too
    finally:
        asyncio.set_event_loop(None)
        loop.close()
    deadline.phase = "exiting"
    if kept is not None and lifecycle.restarting:  # (a signal meanwhile made it a stop)
        log.info("restarting in place")
        exec_restart(kept)
    code = EXIT_RESTART if lifecycle.restarting else 0
    _exit_if_threads_linger(code)
    return code


def _handle_signals(loop: asyncio.AbstractEventLoop, lifecycle: Lifecycle,
                    deadline: Deadline, timeout: float) -> None:
    """Python-level handlers: they run (and arm the deadline) even while the loop is blocked;
    a second signal ends the process at once."""

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        if lifecycle.stop_requested.is_set() and not lifecycle.restarting:
            log.warning("second signal %s: exiting now", signal.Signals(signum).name)
            _exit(EXIT_FORCED)
        lifecycle.restarting = False  # a signal during a restart makes it a plain stop
        deadline.finish = lambda: _exit(EXIT_FORCED)
        deadline.arm(timeout)
        loop.call_soon_threadsafe(lifecycle.request_stop)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)


async def _serve(app: web.Application, sockets: list[socket.socket], deadline: Deadline,
                 ssl_context: ssl.SSLContext | None,
                 runner_args: dict[str, Any]) -> list[int] | None:
    """Start, serve until a stop is asked, stop; returns the fds a restart hands on."""
    lifecycle, timeout = app[LIFECYCLE], app[SETTINGS].shutdown_timeout
    runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=FINAL_REQUEST_WAIT,
                           **runner_args)
    kept: list[int] | None = None
    try:
        await runner.setup()
        for sock in sockets:
            await web.SockSite(runner, sock, ssl_context=ssl_context).start()
        settle_heap()
        lifecycle.mark_serving([_address(sock) for sock in sockets])
        await lifecycle.stop_requested.wait()
        deadline.arm(timeout)
        if lifecycle.restarting and app[SETTINGS].restart_mode == "exec":
            kept = [fcntl.fcntl(s.fileno(), fcntl.F_DUPFD_CLOEXEC, 64) for s in sockets]
            deadline.finish = lambda: exec_restart(kept or [])
        log.info("restarting" if lifecycle.restarting else "stopping",
                 extra={"timeout": timeout})
        lifecycle.begin_stop(timeout, reserve(timeout))
        await _drain(runner, lifecycle, deadline)
    finally:
        deadline.phase = "closing components"
        await runner.cleanup()
    return kept


def settle_heap() -> None:
    """Put every object alive now out of the garbage collector's reach (``gc.freeze``).

    Called once the server has started: its modules, the app and the components live as
    long as the process, yet each full collection walked them all again, a pause of the
    event loop that grows with them. Under an activity storm of 10,000 events/s the full
    collections paused the loop 25 ms each; 3 to 4 ms once what the start made was frozen
    (``bench/activity.py``, which calls this as the server does). What is made later is
    collected as before. The start's own cyclic garbage, if any, is kept: a small, fixed
    amount, where a ``gc.collect()`` first would pause the start instead.
    """
    gc.freeze()


async def _drain(runner: web.AppRunner, lifecycle: Lifecycle, deadline: Deadline) -> None:
    """No new connection; sockets closed; requests in flight finished or answered 503."""
    deadline.phase = "closing WebSockets"
    for site in list(runner.sites):
        await site.stop()  # the listening socket (a restart keeps its own copy)
    await runner.shutdown()  # on_shutdown: every WebSocket closes, 1001 or 1012
    deadline.phase = "waiting for requests in flight"
    while pending := {task for task in lifecycle.inflight if not task.done()}:
        left = lifecycle.working_time()
        if left <= 0:
            break
        await asyncio.wait(pending, timeout=left)
    late = [task for task in lifecycle.inflight if not task.done()]
    if late:
        log.warning("answering %d requests still in flight with 503", len(late))
        lifecycle.abandoned.update(late)
        for task in late:
            task.cancel()
    deadline.phase = "closing connections"
    if runner.server is not None:
        runner.server.pre_shutdown()  # idle keep-alive connections close now
        # Then the rest (a 503 being written): none lingers to read a body left unread.
        await runner.server.shutdown(min(FINAL_REQUEST_WAIT, lifecycle.remaining(0) / 4))


def _address(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _exit_if_threads_linger(code: int) -> None:
    """A thread still running now (a connection's thread that was never closed) would keep
    the interpreter waiting at exit forever: say which, and exit without waiting."""
    lingering = [t.name for t in threading.enumerate()
                 if not t.daemon and t is not threading.main_thread()]
    if lingering:
        log.error("threads still running after the stop: %s; exiting without them",
                  ", ".join(lingering))
        _exit(code)
