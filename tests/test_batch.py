"""Batches: checked together; ordered batches run in order; fail-fast stops the rest."""

from __future__ import annotations

import asyncio

import pytest

from toombos_edge.content.batch import BatchGate, BatchSkipped, plan
from toombos_edge.errors import Invalid

GOOD = {"text": "Hello there.", "channels": ["email"]}


def test_a_batch_is_checked_as_a_whole() -> None:
    checked = plan({"requests": [GOOD, {"channels": ["fax"]}, GOOD], "parallel": False})
    assert len(checked.requests) == 2 and checked.errors[0]["index"] == 1
    assert [r.batch["index"] for r in checked.requests if r.batch] == [0, 1]
    with pytest.raises(Invalid) as refused:
        plan({"requests": [GOOD, {"channels": ["fax"]}], "fail_fast": True})
    assert refused.value.details["errors"][0]["index"] == 1
    for bad in ({}, {"requests": []}, {"requests": [GOOD] * 101},
                {"requests": [GOOD], "parallel": "no"}, {"requests": ["x"]}):
        with pytest.raises(Invalid):
            plan(bad)


async def test_an_ordered_batch_runs_in_order() -> None:
    gate = BatchGate()
    batch = {"id": "bat_1", "size": 3, "parallel": False, "fail_fast": False}
    ran: list[int] = []

    async def job(index: int) -> None:
        async with gate.slot({**batch, "index": index}, final_attempt=True):
            ran.append(index)
            await asyncio.sleep(0)

    await asyncio.gather(job(2), job(1), job(0))
    assert ran == [0, 1, 2]
    assert repr(gate) == "<BatchGate open_batches=0>"


async def test_fail_fast_skips_what_follows_a_final_failure() -> None:
    gate = BatchGate()
    batch = {"id": "bat_2", "size": 3, "parallel": False, "fail_fast": True}
    with pytest.raises(RuntimeError):
        async with gate.slot({**batch, "index": 0}, final_attempt=False):
            raise RuntimeError("transient")
    with pytest.raises(RuntimeError):  # a retry of #0 would pass; #1 fails for good
        async with gate.slot({**batch, "index": 1}, final_attempt=True):
            raise RuntimeError("for good")
    with pytest.raises(BatchSkipped, match="#1"):
        async with gate.slot({**batch, "index": 2}, final_attempt=True):
            pytest.fail("must not run")


async def test_a_missing_predecessor_does_not_block_forever() -> None:
    gate = BatchGate(max_wait=0.05)
    batch = {"id": "bat_3", "size": 2, "parallel": False, "fail_fast": False, "index": 1}
    async with gate.slot(batch, final_attempt=True):
        pass  # #0 was cancelled before it ran; #1 still runs after the wait
