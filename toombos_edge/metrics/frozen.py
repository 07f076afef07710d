"""Scrapes read the live counters on the event loop, and build and encode in a thread.

Building the metric families and encoding them costs milliseconds per hundred series
(prometheus_client's pure-Python encoders): too long to hold the loop. So a scrape first
*freezes* every collector on the loop (a copy of its counters, microseconds) and then
collects and encodes the frozen copies in a worker thread, where nothing they read
changes under them.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from prometheus_client.registry import Collector


class LoopCollector(Collector):
    """A collector whose state the event loop changes: it is read there and only there.

    ``freeze`` returns a collector over a copy of that state; by default the families
    themselves, collected now. Collectors with many series override it to copy their
    counters instead, leaving the family building to the thread.
    """

    def freeze(self) -> Collector:
        return Frozen(list(self.collect()))


class Frozen(Collector):
    """Metric families collected earlier."""

    def __init__(self, families: Iterable[Any]) -> None:
        self._families = list(families)

    def collect(self) -> Iterator[Any]:
        return iter(self._families)


class Parts(Collector):
    """Several collectors as one, in order (what the encoders take)."""

    def __init__(self, parts: Iterable[Collector]) -> None:
        self._parts = list(parts)

    def collect(self) -> Iterator[Any]:
        for part in self._parts:
            yield from part.collect()


def freeze(part: Collector) -> Collector:
    """A loop collector's frozen copy; any other collector (prometheus_client's
    ProcessCollector, which reads only /proc) is safe to collect in a thread as it is."""
    return part.freeze() if isinstance(part, LoopCollector) else part
