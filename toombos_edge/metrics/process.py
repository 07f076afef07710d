"""The seed's three gauges: ``app_uptime_seconds``, ``app_cpu_usage_percent`` and
``app_memory_usage_percent``.

CPU comes from ``os.times`` (no file), memory from ``/proc/self/statm`` against the
machine's ``MemTotal``: reads of procfs, answered from kernel memory, never from a disk.
prometheus_client's ``ProcessCollector`` beside them gives the raw ``process_*`` series.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from prometheus_client.core import GaugeMetricFamily

from .frozen import LoopCollector

#: Shorter gaps between scrapes reuse the last CPU figure instead of a noisy one.
MIN_CPU_WINDOW = 1.0


def _cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system


def _memory_total(meminfo: Path = Path("/proc/meminfo")) -> int | None:
    """Bytes of RAM in the machine, or None off Linux."""
    try:
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def _resident_bytes(statm: Path = Path("/proc/self/statm")) -> int | None:
    try:
        return int(statm.read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


class AppGauges(LoopCollector):
    """Uptime since the app was built; CPU over the time since the previous reading (or the
    start); resident memory as a share of the machine's."""

    def __init__(self, clock: Callable[[], float] = time.monotonic,
                 cpu: Callable[[], float] = _cpu_seconds) -> None:
        self._clock, self._cpu = clock, cpu
        self.started = clock()
        self._mark = (self.started, cpu())
        self._cpu_percent = 0.0
        self._memory_total = _memory_total()

    def uptime(self) -> float:
        return self._clock() - self.started

    def cpu_percent(self) -> float:
        """Percent of one core used since the last reading at least a second old (before
        the first such reading: since the start)."""
        now, used = self._clock(), self._cpu()
        then, used_then = self._mark
        percent = 100.0 * (used - used_then) / max(now - then, 1e-9)
        if now - then >= MIN_CPU_WINDOW:
            self._mark, self._cpu_percent = (now, used), percent
            return percent
        return percent if then == self.started else self._cpu_percent

    def memory_percent(self) -> float:
        resident = _resident_bytes()
        if resident is None or not self._memory_total:
            return 0.0
        return 100.0 * resident / self._memory_total

    def collect(self) -> Iterator[Any]:
        yield GaugeMetricFamily("app_uptime_seconds", "Seconds since the server started.",
                                value=self.uptime())
        yield GaugeMetricFamily(
            "app_cpu_usage_percent",
            "CPU used by the server, percent of one core, since the previous scrape.",
            value=self.cpu_percent())
        yield GaugeMetricFamily(
            "app_memory_usage_percent",
            "Resident memory of the server, percent of the machine's RAM.",
            value=self.memory_percent())
