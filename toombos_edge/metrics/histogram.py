"""A histogram that costs one bisect and two additions per observation.

prometheus_client's ``Histogram`` takes a lock and walks its buckets on every ``observe``;
the request path records one of these instead, and the collectors turn them into metric
families when scraped. Single-threaded by design: only the event loop observes.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Sequence

#: HTTP handling here takes tens of microseconds to a few seconds.
REQUEST_SECONDS = (0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                   0.5, 1.0, 2.5, 5.0, 10.0)
#: A job runs (or waits) from a millisecond to many minutes.
JOB_SECONDS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0,
               3600.0)
#: One group commit: fsync-bound, usually well under 10 ms.
COMMIT_SECONDS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                  0.25, 1.0)
#: Writes per commit, up to TOOMBOS_DB_BATCH_MAX.
BATCH_SIZES = (1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0)


class Histogram:
    """Counts per bucket (upper bounds inclusive, as Prometheus' ``le``) and a sum."""

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = tuple(bounds)
        self.counts = [0] * (len(self.bounds) + 1)  #: the last one is +Inf
        self.sum = 0.0

    def __repr__(self) -> str:
        return f"<Histogram count={self.count} sum={self.sum:.6g}>"

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value

    def copy(self) -> Histogram:
        twin = Histogram.__new__(Histogram)
        twin.bounds, twin.counts, twin.sum = self.bounds, list(self.counts), self.sum
        return twin

    @property
    def count(self) -> int:
        return sum(self.counts)

    def add(self, other: Histogram) -> None:
        """Fold ``other`` (same bounds) into this one."""
        for i, n in enumerate(other.counts):
            self.counts[i] += n
        self.sum += other.sum

    def buckets(self) -> list[tuple[str, float]]:
        """Cumulative ``(le, count)`` pairs ending with ``+Inf``, as HistogramMetricFamily
        takes them."""
        pairs, total = [], 0
        for bound, n in zip((*map(_le, self.bounds), "+Inf"), self.counts, strict=True):
            total += n
            pairs.append((bound, float(total)))
        return pairs

    def quantile(self, q: float) -> float:
        """The ``q`` quantile, interpolated linearly inside its bucket the way PromQL's
        ``histogram_quantile`` does (0 when empty; the highest bound for the +Inf bucket)."""
        total = self.count
        if total == 0:
            return 0.0
        rank, seen = q * total, 0
        for i, n in enumerate(self.counts):
            if n and seen + n >= rank:
                if i == len(self.bounds):
                    return self.bounds[-1]
                lower = self.bounds[i - 1] if i else 0.0
                return lower + (self.bounds[i] - lower) * (rank - seen) / n
            seen += n
        return self.bounds[-1]


def merged(histograms: Iterable[Histogram], bounds: Sequence[float]) -> Histogram:
    total = Histogram(bounds)
    for histogram in histograms:
        total.add(histogram)
    return total


def _le(bound: float) -> str:
    return repr(float(bound))
