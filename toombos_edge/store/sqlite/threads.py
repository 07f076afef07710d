"""Threads that each own one ``sqlite3`` connection and hand results back to the event loop.

A connection is used only by the thread that opened it. Work reaches the thread as a job (a
function of the connection) on a queue that one thread or several share; a job hands its
result back with ``hand_back``, one ``call_soon_threadsafe`` (one wake-up of the loop) however
many callers it resumes. ``None`` on the queue stops one thread, after the jobs ahead of it.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")
#: A job: runs in a connection's thread; hands its own result back.
Job = Callable[[sqlite3.Connection], None]
Jobs = queue.SimpleQueue[Job | None]

log = logging.getLogger(__name__)


def settle(future: asyncio.Future[Any], ok: bool, value: Any) -> None:
    """Resolve ``future`` with a result (``ok``) or an exception, unless its caller left."""
    if future.done():
        return  # cancelled: the caller no longer waits
    if ok:
        future.set_result(value)
    else:
        future.set_exception(value)


def hand_back(loop: asyncio.AbstractEventLoop, callback: Callable[..., None],
              *args: Any) -> None:
    """Run ``callback(*args)`` on ``loop`` (from a connection's thread)."""
    try:
        loop.call_soon_threadsafe(callback, *args)
    except RuntimeError:  # the loop is closed: nobody waits for this any more
        log.debug("result of a database job dropped: the event loop is closed")


def call(loop: asyncio.AbstractEventLoop, future: asyncio.Future[T],
         op: Callable[[sqlite3.Connection], T], conn: sqlite3.Connection) -> None:
    """The job that runs ``op`` and resolves ``future`` with its result or exception."""
    try:
        value: Any = op(conn)
    except Exception as exc:  # the caller gets it
        hand_back(loop, settle, future, False, exc)
    else:
        hand_back(loop, settle, future, True, value)


class ConnectionThread:
    """One thread and its connection: opens and prepares it, runs jobs until told to stop.

    ``ready`` resolves with what ``prepare`` returned (or its exception, and the thread
    ends); ``ended`` resolves once the connection is closed and the thread about to exit,
    with the exception of a close that failed. The thread is not a daemon: the interpreter
    waits for it at exit, so a commit in progress finishes; ``Database.close`` ends it.
    """

    def __init__(self, path: Path, name: str, jobs: Jobs,
                 prepare: Callable[[sqlite3.Connection], Any],
                 loop: asyncio.AbstractEventLoop) -> None:
        self._path, self._jobs, self._prepare, self._loop = path, jobs, prepare, loop
        self.ready: asyncio.Future[Any] = loop.create_future()
        self.ended: asyncio.Future[None] = loop.create_future()
        self.thread = threading.Thread(target=self._run, name=name)
        self.thread.start()

    def __repr__(self) -> str:
        return f"<ConnectionThread {self.thread.name} alive={self.thread.is_alive()}>"

    def stop(self) -> None:
        """Let the thread end once the jobs queued before now have run (from any thread)."""
        self._jobs.put(None)

    def _run(self) -> None:
        try:
            conn = sqlite3.connect(self._path, isolation_level=None)
        except Exception as exc:
            hand_back(self._loop, settle, self.ready, False, exc)
            hand_back(self._loop, settle, self.ended, True, None)
            return
        closed: tuple[bool, Any] = (True, None)
        try:
            if self._opened(conn):
                while (job := self._jobs.get()) is not None:
                    job(conn)
        finally:
            try:
                conn.close()
            except Exception as exc:
                closed = (False, exc)
            hand_back(self._loop, settle, self.ended, *closed)

    def _opened(self, conn: sqlite3.Connection) -> bool:
        try:
            value = self._prepare(conn)
        except Exception as exc:
            hand_back(self._loop, settle, self.ready, False, exc)
            return False
        hand_back(self._loop, settle, self.ready, True, value)
        return True
