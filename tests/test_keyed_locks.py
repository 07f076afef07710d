"""KeyedLocks: one task at a time per key, other keys free, nothing kept for a key no task holds."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from toombos_edge.documents.keyed_locks import KeyedLocks


async def test_one_holder_per_key_and_other_keys_free() -> None:
    locks = KeyedLocks()
    release = asyncio.Event()
    holding, waiting = asyncio.Event(), asyncio.Event()
    order: list[str] = []

    async def first() -> None:
        async with locks.hold("a"):
            holding.set()
            await release.wait()
            order.append("first")

    async def second() -> None:
        waiting.set()  # nothing yields from here to the lock's wait
        async with locks.hold("a"):
            order.append("second")

    one = asyncio.create_task(first())
    await holding.wait()
    two = asyncio.create_task(second())
    await waiting.wait()
    async with asyncio.timeout(5):
        async with locks.hold("b"):  # another key: not held up by "a"
            order.append("b")
    assert len(locks) == 1 and order == ["b"]  # "a", held and waited for; "b" dropped
    release.set()
    async with asyncio.timeout(5):
        await asyncio.gather(one, two)
    assert order == ["b", "first", "second"]
    assert len(locks) == 0  # every entry dropped once nobody holds or waits


async def test_entry_dropped_when_a_holder_fails() -> None:
    locks = KeyedLocks()
    with pytest.raises(RuntimeError):
        async with locks.hold("a"):
            raise RuntimeError("the work failed")
    assert len(locks) == 0
    async with asyncio.timeout(5), locks.hold("a"):  # and the key can be taken again
        pass


async def test_a_waiter_cancelled_in_the_queue_leaves_no_entry() -> None:
    locks = KeyedLocks()
    holding, waiting, release = asyncio.Event(), asyncio.Event(), asyncio.Event()

    async def holder() -> None:
        async with locks.hold("a"):
            holding.set()
            await release.wait()

    async def waiter() -> None:
        waiting.set()  # nothing yields from here to the lock's wait
        async with locks.hold("a"):
            raise AssertionError("a cancelled waiter never gets the lock")

    held = asyncio.create_task(holder())
    await holding.wait()
    queued = asyncio.create_task(waiter())
    await waiting.wait()
    queued.cancel()
    async with asyncio.timeout(5):
        with contextlib.suppress(asyncio.CancelledError):
            await queued
    release.set()
    async with asyncio.timeout(5):
        await held
    assert len(locks) == 0
