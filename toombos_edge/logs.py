"""Structured logging: JSON lines (default) or plain text, with the request's correlation id."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any, NamedTuple

import orjson

from .ids import iso

correlation_id: ContextVar[str | None] = ContextVar("correlation_id", default=None)


class Actor(NamedTuple):
    """Who made a request: the client IP, and the key's id and name when one was shown."""

    ip: str
    key_id: str | None = None
    name: str | None = None


#: Who makes the request being handled, worked out only when asked (by the activity log):
#: set by the request pipeline on every route that needs a key.
requester: ContextVar[Callable[[], Actor] | None] = ContextVar("requester", default=None)

# Attributes every LogRecord has; anything else was passed in ``extra`` and is kept.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line; UTC timestamps (``iso`` caches each second's text, where
    ``formatTime`` ran strftime per line: the access log writes one line per request)."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": iso(int(record.created * 1000)),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        cid = correlation_id.get()
        if cid:
            entry["correlation_id"] = cid
        fields = vars(record)
        for key in sorted(fields.keys() - _STANDARD):  # what was passed in ``extra``
            if not key.startswith("_"):
                entry[key] = fields[key]
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        cid = correlation_id.get()
        return f"{line} [{cid}]" if cid else line


def configure(level: str, fmt: str) -> None:
    """Send every log line to stdout in the chosen format (called by the CLI only)."""
    handler = logging.StreamHandler(sys.stdout)
    formatter: logging.Formatter = JsonFormatter() if fmt == "json" else TextFormatter()
    formatter.converter = time.gmtime
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # aiosqlite traces every statement at debug: noise that drowns the server's own lines.
    logging.getLogger("aiosqlite").setLevel(max(root.level, logging.INFO))
