"""Health checks of each component, in the client contract's shape.

Checks are cheap and cached for a second, so a probe storm never loads the database; a
``POST /health/check/{component}`` runs one afresh.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from . import __version__
from .errors import NotFound
from .ids import iso, now_ms
from .lifecycle import Lifecycle
from .store.health import HealthStore
from .store.space import ROOM_BYTES

log = logging.getLogger(__name__)

PASS, WARN, FAIL = "pass", "warn", "fail"
CACHE_SECONDS = 1.0
DISK_WARN_FRACTION = 0.05
MEMORY_WARN_MB = 1024


@dataclass(frozen=True, slots=True)
class Check:
    status: str
    message: str
    latency_ms: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {"status": self.status, "message": self.message, "latency_ms": self.latency_ms}


CheckFn = Callable[[], Awaitable[Check]]


def rss_bytes() -> int:
    """Resident memory of this process (Linux /proc; 0 where it is not available)."""
    try:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


class HealthService:
    """Runs the registered checks; ``database``, ``disk``, ``memory`` and the rest."""

    def __init__(self, store: HealthStore, data_dir: Path, lifecycle: Lifecycle) -> None:
        self._store = store
        self._data_dir = data_dir
        self.lifecycle = lifecycle
        self.features: list[str] = []
        self._checks: dict[str, CheckFn] = {
            "database": self._database,
            "cache": self._cache,
            "external_services": self._external,
            "disk": self._disk,
            "memory": self._memory,
        }
        self._last: tuple[str, dict[str, dict[str, Any]]] = ("healthy", {})
        self._last_at = 0.0
        self._checks_json = orjson.Fragment(b"{}")  # the rendered checks, encoded once
        self._body = b""  # the last /health body, and the millisecond it was rendered in
        self._body_ms = -1
        self._lock = asyncio.Lock()

    def register(self, name: str, check: CheckFn) -> None:
        """Add or replace a component's check (the cache, the engine …)."""
        self._checks[name] = check
        self._last_at = 0.0

    async def report(self) -> dict[str, Any]:
        """The ``/health`` body."""
        status, checks = await self._snapshot()
        return {
            "status": status,
            "timestamp": iso(now_ms()),
            "checks": dict(checks),
            "uptime": round(self.lifecycle.uptime, 3),
            "version": __version__,
        }

    async def report_json(self) -> tuple[str, bytes]:
        """The overall status and the ``/health`` body as JSON bytes.

        The same as ``orjson.dumps(report())``, but the checks are encoded once per
        snapshot and the body once per millisecond: under a probe storm most requests
        send bytes already made (the timestamp has millisecond resolution anyway).
        """
        if time.monotonic() - self._last_at >= CACHE_SECONDS:
            await self._snapshot()
        now = now_ms()
        if now != self._body_ms:
            self._body = orjson.dumps({
                "status": self._last[0],
                "timestamp": iso(now),
                "checks": self._checks_json,
                "uptime": round(self.lifecycle.uptime, 3),
                "version": __version__,
            })
            self._body_ms = now
        return self._last[0], self._body

    async def detailed(self) -> dict[str, Any]:
        """The ``/health/detailed`` body: every component, counts and features."""
        body = await self.report()
        checks = body["checks"]
        body["components"] = checks
        body["checks_passed"] = sum(1 for c in checks.values() if c["status"] == PASS)
        body["checks_total"] = len(checks)
        body["uptime_seconds"] = body["uptime"]
        body["features"] = sorted(self.features)
        body["ready"] = self.lifecycle.ready
        return body

    async def run_one(self, name: str) -> Check:
        check = self._checks.get(name)
        if check is None:
            raise NotFound(f"no health check named {name!r}", {"known": sorted(self._checks)})
        return await _timed(check)

    async def _snapshot(self) -> tuple[str, dict[str, dict[str, Any]]]:
        """Overall status and the rendered checks, measured at most once a second."""
        if time.monotonic() - self._last_at < CACHE_SECONDS:
            return self._last
        async with self._lock:
            if time.monotonic() - self._last_at >= CACHE_SECONDS:
                names = list(self._checks)
                results = await asyncio.gather(*(_timed(self._checks[n]) for n in names))
                checks = dict(zip(names, results, strict=True))
                rendered = {name: check.to_json() for name, check in checks.items()}
                self._last = (overall(checks), rendered)
                self._checks_json = orjson.Fragment(orjson.dumps(rendered))
                self._body_ms = -1  # a new snapshot: the next body is rendered afresh
                self._last_at = time.monotonic()
        return self._last

    async def _database(self) -> Check:
        return Check(PASS, await self._store.ping())  # a failure is the check's FAIL

    async def _cache(self) -> Check:
        folder = self._data_dir / "cache"
        if folder.is_dir() and os.access(folder, os.W_OK):
            return Check(PASS, "cache directory writable")
        return Check(WARN, "cache directory missing; it is created on first use")

    async def _external(self) -> Check:
        return Check(PASS, "no external services configured")

    async def _disk(self) -> Check:
        usage = shutil.disk_usage(self._data_dir)
        free_fraction = usage.free / usage.total if usage.total else 0.0
        message = f"{usage.free // 2**20} MB free ({free_fraction:.0%})"
        space = self._store.space
        if space.reason is not None:
            if usage.free < ROOM_BYTES or not await self._store.has_room():
                return Check(FAIL, f"out of space ({space.reason}): writes get 507 until "
                                   f"space is freed, reads go on; {message}")
            space.wrote()  # freed since: the next write will tell for sure
        return Check(WARN if free_fraction < DISK_WARN_FRACTION else PASS, message)

    async def _memory(self) -> Check:
        rss_mb = rss_bytes() / 2**20
        return Check(WARN if rss_mb > MEMORY_WARN_MB else PASS, f"{rss_mb:.1f} MB resident")


async def _timed(check: CheckFn) -> Check:
    began = time.perf_counter()
    try:
        result = await check()
    except Exception as exc:  # a failing check is a "fail", never an error of the probe
        result = Check(FAIL, f"{type(exc).__name__}: {exc}")
    latency = round((time.perf_counter() - began) * 1000, 3)
    return Check(result.status, result.message, latency)


def overall(checks: dict[str, Check]) -> str:
    """healthy, degraded (a warning or a non-database failure) or unhealthy."""
    if checks.get("database", Check(PASS, "")).status == FAIL:
        return "unhealthy"
    if any(check.status != PASS for check in checks.values()):
        return "degraded"
    return "healthy"
