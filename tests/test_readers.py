"""The reader pool: files are read in worker processes, and a worker that dies costs one
file its text, never the server."""

from __future__ import annotations

import functools
import os

import pytest

from toombos_edge.documents.extracted import ExtractionError
from toombos_edge.documents.readers import ReaderPool


async def test_files_are_read_in_another_process() -> None:
    pool = ReaderPool(1)
    try:
        assert await pool.run(os.getpid) != os.getpid()
        assert await pool.run(functools.partial(pow, 2, 10)) == 1024
        assert pool.done == 2
    finally:
        await pool.close()
    assert "idle" in repr(pool)


async def test_a_worker_that_dies_is_an_extraction_error_and_the_next_file_is_read() -> None:
    pool = ReaderPool(1)
    try:
        with pytest.raises(ExtractionError, match="reader process died"):
            await pool.run(functools.partial(os._exit, 3))
        assert await pool.run(functools.partial(pow, 3, 2)) == 9  # a fresh worker
        assert (pool.crashed, pool.done) == (1, 1)
    finally:
        await pool.close()


async def test_zero_processes_reads_in_threads() -> None:
    pool = ReaderPool(0)
    assert await pool.run(os.getpid) == os.getpid()
    await pool.close()
