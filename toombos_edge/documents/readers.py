"""Text extraction in worker processes, so that parsing never holds the server's GIL.

The format libraries are mostly Python: a thread reading a DOCX or an ODT holds the GIL for
most of its run, and the event loop waits on it (bench/ingest.py's mixed corpus with
extraction in threads: /health p99 192 ms, against 16 ms idle). In a process of its own a
reader costs the loop nothing, and a crash in a library (lxml is C) or an out-of-memory kill
takes the worker, not the server: the upload is then kept without text, like any file that
gives none.

Workers are started on first use with "spawn" (a fresh interpreter, never a fork of this
multi-threaded process), at most ``processes`` of them, each replaced after
``TASKS_PER_WORKER`` files so that the memory a large document left behind goes back.
``processes=0`` reads in this process's threads instead.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import TypeVar

from .extracted import ExtractionError

log = logging.getLogger(__name__)

T = TypeVar("T")
TASKS_PER_WORKER = 50
PARENT_POLL_SECONDS = 1.0  #: how soon a worker notices the server is gone


class ReaderPool:
    """Runs blocking extraction functions (picklable: module-level, with plain arguments)."""

    def __init__(self, processes: int) -> None:
        self.processes = processes
        self.done = 0
        self.crashed = 0
        self._pool: ProcessPoolExecutor | None = None

    def __repr__(self) -> str:
        running = "started" if self._pool else "idle"
        return (f"<ReaderPool processes={self.processes} {running} done={self.done} "
                f"crashed={self.crashed}>")

    async def run(self, fn: Callable[[], T]) -> T:
        """``fn()`` in a worker; ``ExtractionError`` if the worker died running it."""
        loop = asyncio.get_running_loop()
        if self.processes == 0:
            return await loop.run_in_executor(None, fn)
        pool = self._started()
        try:
            result = await loop.run_in_executor(pool, fn)
        except BrokenProcessPool:
            self.crashed += 1
            if self._pool is pool:  # the next file gets a fresh pool
                self._pool = None
                await asyncio.to_thread(pool.shutdown, False, cancel_futures=True)
            log.warning("a reader process died; the file is kept without text")
            raise ExtractionError("the reader process died while reading the file (a crash "
                                  "in a format library, or out of memory)") from None
        self.done += 1
        return result

    def _started(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                self.processes, mp_context=multiprocessing.get_context("spawn"),
                initializer=_worker_setup, max_tasks_per_child=TASKS_PER_WORKER)
        return self._pool

    async def close(self) -> None:
        """Stop the workers; a file being read is finished first."""
        pool, self._pool = self._pool, None
        if pool is not None:
            await asyncio.to_thread(pool.shutdown, True, cancel_futures=True)


def _worker_setup() -> None:
    """In each worker. Ctrl-C at a terminal reaches every process of its group: the server
    stops its workers itself (``close``, a file being read finished first), so they ignore
    it. A server gone without stopping them (killed, or out at its stop's deadline) takes
    them along: nothing else would end one (it holds its own queue's writing end)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=_exit_with, args=(os.getppid(),), name="parent-watch",
                     daemon=True).start()


def _exit_with(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(PARENT_POLL_SECONDS)
    os._exit(0)
