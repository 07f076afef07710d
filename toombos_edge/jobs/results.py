"""The shape of a job's ``results``: channel name → an object with a ``status``.

The public dashboard renders every entry of ``results`` as a channel result and reads
``.status`` and ``.timestamp`` of each, so a loose value there (a number, a string, an object
without a status) breaks its pages. Handlers say what each part produced in
``Outcome.results`` and anything else in ``Outcome.output``; the engine applies this rule to
every outcome it stores, whichever kind (plugins' included) produced it: entries that are not
channel-shaped move to the job's ``output``, and a channel entry without a ``timestamp`` gets
the time the job ended.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def is_channel_result(value: Any) -> bool:
    """An object with a string ``status`` (the client reads it of every entry)."""
    return isinstance(value, dict) and isinstance(value.get("status"), str)


def split(
    results: Mapping[str, Any], timestamp: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(channel results, everything else) of a handler's ``results``."""
    channels: dict[str, Any] = {}
    loose: dict[str, Any] = {}
    for name, value in results.items():
        if is_channel_result(value):
            channels[name] = value if "timestamp" in value else {**value, "timestamp": timestamp}
        else:
            loose[name] = value
    return channels, loose
