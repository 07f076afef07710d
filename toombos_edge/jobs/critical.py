"""The state of the system for operators in a hurry: ``GET /api/critical/status``.

Queue state from the engine, the most recent failing jobs with their errors, and every
component whose health check does not pass.
"""

from __future__ import annotations

from typing import Any

from ..health import PASS, HealthService
from ..ids import iso, now_ms
from ..store.jobs import JobFilter
from .engine import JobEngine
from .listing import JobQueries

RECENT_FAILURES = 10


class CriticalStatus:
    """Builds the critical status report from the engine, the jobs and the health checks."""

    def __init__(self, engine: JobEngine, health: HealthService, jobs: JobQueries) -> None:
        self._engine = engine
        self._health = health
        self._jobs = jobs

    def __repr__(self) -> str:
        return f"<CriticalStatus {self._engine!r}>"

    async def report(self) -> dict[str, Any]:
        health = await self._health.report()
        degraded = {name: check for name, check in health["checks"].items()
                    if check["status"] != PASS}
        failing = await self._jobs.page(JobFilter(statuses=("failed",)), RECENT_FAILURES)
        partial = await self._jobs.page(JobFilter(statuses=("partial",)), RECENT_FAILURES)
        queue = self._engine.stats()
        return {
            "status": _overall(health["status"], queue, failing.total),
            "timestamp": iso(now_ms()),
            "queue": queue,
            "failing_jobs": [_brief(job) for job in failing.jobs],
            "failed_total": failing.total,
            "partial_jobs": [_brief(job) for job in partial.jobs],
            "last_errors": [
                {"job_id": job.id, "error": job.last_error, "at": iso(job.updated_at)}
                for job in sorted(failing.jobs + partial.jobs, key=lambda j: -j.updated_at)
                if job.last_error
            ][:RECENT_FAILURES],
            "degraded_components": degraded,
            "health": health["status"],
        }


def _brief(job: Any) -> dict[str, Any]:
    return {"job_id": job.id, "kind": job.kind, "status": job.status.value,
            "attempts": job.attempts, "last_error": job.last_error,
            "document_id": job.document_id, "updated_at": iso(job.updated_at)}


def _overall(health: str, queue: dict[str, Any], failed: int) -> str:
    """critical (unhealthy), degraded (a check, a paused queue or failed jobs), or ok."""
    if health == "unhealthy":
        return "critical"
    if health == "degraded" or queue.get("paused") or failed:
        return "degraded"
    return "ok"
