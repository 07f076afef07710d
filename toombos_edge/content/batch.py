"""Batches of generate requests: checked together, then run in parallel or in order.

``parallel: false`` runs the batch's jobs one at a time in their order: each job after the
first is stored depending on the one before it (``depends_on``), and the engine claims it
only once that one has ended (see ``ContentService.submit_batch``, and ``settle`` in
``store/sqlite/job_dependencies.py``).
``fail_fast`` refuses the whole batch when one request is invalid, and in an ordered batch
cancels the jobs after one that failed for good. Nothing of this lives in memory: a restart
in the middle of a batch goes on where it stopped.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from ..errors import Invalid
from ..ids import new_id
from .request import GenerateRequest, parse

MAX_BATCH = 100


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
