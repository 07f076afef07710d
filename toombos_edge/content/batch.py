"""Batches of generate requests: checked together, then run in parallel or in order.

``parallel: false`` runs the batch's jobs one at a time in their order (a per-batch gate
in this process); ``fail_fast`` refuses the whole batch when one request is invalid, and
in an ordered batch skips the jobs after one that failed for good. The gate lives in
memory: after a restart, the rest of an ordered batch runs without it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from typing import Any

from ..errors import Invalid
from ..ids import new_id
from .request import GenerateRequest, parse

MAX_BATCH = 100


class BatchSkipped(Exception):
    """An earlier job of a fail-fast batch failed; this one is not run."""


@dataclass(frozen=True, slots=True)
class BatchPlan:
    id: str
    requests: list[GenerateRequest]
    errors: list[dict[str, Any]]
    parallel: bool
    fail_fast: bool


def plan(body: dict[str, Any], publish: bool | None = None) -> BatchPlan:
    """Parse ``{"requests": [...], "parallel", "fail_fast"}``; 422 if fail-fast and invalid."""
    raw = body.get("requests")
    if not isinstance(raw, list) or not raw:
        raise Invalid("'requests' must be a non-empty list of generate requests")
    if len(raw) > MAX_BATCH:
        raise Invalid(f"a batch holds at most {MAX_BATCH} requests")
    parallel, fail_fast = body.get("parallel", True), body.get("fail_fast", False)
    if not isinstance(parallel, bool) or not isinstance(fail_fast, bool):
        raise Invalid("'parallel' and 'fail_fast' must be true or false")
    batch_id = new_id("bat")
    requests, errors = [], []
    for index, item in enumerate(raw):
        try:
            if not isinstance(item, dict):
                raise Invalid("each request must be a JSON object")
            requests.append(parse(item, publish=publish))
        except Invalid as exc:
            errors.append({"index": index, "error": exc.message, "details": exc.details})
    if errors and (fail_fast or not requests):
        raise Invalid(f"{len(errors)} of {len(raw)} requests are invalid; nothing was created",
                      {"errors": errors})
    common = {"id": batch_id, "size": len(requests), "parallel": parallel,
              "fail_fast": fail_fast}
    tagged = [replace(r, batch={**common, "index": i}) for i, r in enumerate(requests)]
    return BatchPlan(batch_id, tagged, errors, parallel, fail_fast)


@dataclass
class _State:
    turn: int = 0
    failed: str | None = None
    changed: asyncio.Event = field(default_factory=asyncio.Event)


class BatchGate:
    """Orders the jobs of sequential batches and stops fail-fast ones after a failure.

    A job waits for the one before it at most ``max_wait`` seconds (that one may have been
    cancelled before it ran); any end of an attempt, failed or not, lets the next one go,
    so a retry waiting for a worker can never deadlock the batch.
    """

    def __init__(self, max_wait: float = 120.0) -> None:
        self._batches: dict[str, _State] = {}
        self.max_wait = max_wait

    def __repr__(self) -> str:
        return f"<BatchGate open_batches={len(self._batches)}>"

    @asynccontextmanager
    async def slot(self, batch: dict[str, Any] | None, final_attempt: bool) -> AsyncIterator[None]:
        """Wait for this job's turn (ordered batches); record a final failure."""
        if batch is None:
            yield
            return
        state = self._batches.setdefault(batch["id"], _State())
        if not batch["parallel"]:
            await self._wait_turn(state, batch["index"])
        if batch["fail_fast"] and state.failed is not None:
            self._advance(batch, state)
            raise BatchSkipped(f"skipped: job {state.failed} of this batch failed (fail_fast)")
        try:
            yield
        except Exception:
            if final_attempt:
                state.failed = f"#{batch['index']}"
            raise
        finally:
            self._advance(batch, state)

    async def _wait_turn(self, state: _State, index: int) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.max_wait
        while state.turn < index and loop.time() < deadline:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(state.changed.wait(), deadline - loop.time())

    def _advance(self, batch: dict[str, Any], state: _State) -> None:
        state.turn = max(state.turn, batch["index"] + 1)
        state.changed.set()
        state.changed = asyncio.Event()
        if state.turn >= batch["size"]:
            self._batches.pop(batch["id"], None)
