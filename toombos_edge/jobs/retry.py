"""How long a failed attempt waits before the next: exponential backoff with jitter."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Backoff:
    """``base * 2**(attempt-1)`` seconds, capped, then "equal jitter": half fixed, half random.

    The fixed half keeps retries from hammering a sick dependency; the random half spreads a
    burst of failures so that they do not all come back at once.
    """

    base: float = 1.0
    cap: float = 300.0

    def ceiling(self, attempt: int) -> float:
        """The longest wait after failed attempt number ``attempt`` (1-based), in seconds."""
        return float(min(self.cap, self.base * 2 ** max(0, min(attempt - 1, 62))))

    def bounds(self, attempt: int) -> tuple[float, float]:
        """(shortest, longest) wait after ``attempt``, in seconds."""
        top = self.ceiling(attempt)
        return top / 2, top

    def delay(self, attempt: int, rand: float) -> float:
        """The wait after ``attempt`` for a uniform ``rand`` in [0, 1)."""
        low, top = self.bounds(attempt)
        return low + (top - low) * rand
