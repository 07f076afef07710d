"""Structured logging: JSON lines (default) or plain text, with the request's correlation id.

Every line is formatted where it is logged and written to stdout by a thread of its own, in
batches (:class:`LineWriter`): the event loop never waits on a slow disk or pipe, and a busy
server makes one write per batch rather than one per line. The access log (one line per
request) bypasses ``logging``'s records altogether: it hands the writer a tuple that the
writer's thread renders (``bench/http.py`` measures what it costs).
"""

from __future__ import annotations

import collections
import logging
import re
import sys
import threading
import time
from collections.abc import Callable
from contextvars import ContextVar
from functools import lru_cache
from typing import Any, BinaryIO, NamedTuple

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

#: Lines queued for the writer before more are dropped (and counted) rather than held.
QUEUE_LINES = 100_000
#: How long a flush or the close at exit waits for a stuck stdout before it gives up.
FLUSH_TIMEOUT = 2.0
#: How long the writer lets lines gather after the first: under load one wake-up and one
#: write per interval, not one per line (a wake-up per line cost the loop ~3 us a request).
#: The most a line waits, and so the most a kill -9 loses; a stop flushes.
GATHER_SECONDS = 0.05

#: Renders one line from (ms since epoch, level, logger name, message, extra fields).
LineFormat = Callable[[int, str, str, str, dict[str, Any]], bytes]

#: A line the writer's thread renders: a tuple whose first item turns the whole tuple into
#: the line's bytes. The access log hands its lines over this way (see ``api/access_log``).
Deferred = tuple[Any, ...]


def json_line(ms: int, level: str, name: str, msg: str, fields: dict[str, Any]) -> bytes:
    entry: dict[str, Any] = {"ts": iso(ms), "level": level, "logger": name, "msg": msg}
    entry.update(fields)
    return orjson.dumps(entry, default=str, option=orjson.OPT_APPEND_NEWLINE)


def text_line(ms: int, level: str, name: str, msg: str, fields: dict[str, Any]) -> bytes:
    cid, exc = fields.get("correlation_id"), fields.get("exc")
    tail = (f" [{cid}]" if cid else "") + (f"\n{exc}" if exc else "")
    return f"{_text_time(ms)} {level.upper():<7} {name}: {msg}{tail}\n".encode()


LINE_FORMATS: dict[str, LineFormat] = {"json": json_line, "text": text_line}


@lru_cache(maxsize=256)
def _text_second(seconds: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(seconds))


def _text_time(ms: int) -> str:
    seconds, millis = divmod(ms, 1000)
    return f"{_text_second(seconds)},{millis:03d}"


class LineWriter:
    """Writes lines to a binary stream from a daemon thread, as many as are waiting at once.

    :meth:`put` never blocks: past ``limit`` waiting lines it drops the line and counts it in
    ``dropped`` (a stdout nobody reads must not grow the server's memory without bound).
    """

    def __init__(self, stream: BinaryIO, limit: int = QUEUE_LINES) -> None:
        self._stream, self._limit = stream, limit
        self._lines: collections.deque[bytes | Deferred | threading.Event] = collections.deque()
        self._wake = threading.Event()
        #: True from a put's wake-up until the thread takes the lines: a plain attribute
        #: for put() to read, where ``Event.is_set`` is a Python call on every request.
        self._woken = False
        self._closed = False
        self.written = 0
        self.dropped = 0
        self._thread = threading.Thread(target=self._run, name="log-writer", daemon=True)
        self._thread.start()

    def __repr__(self) -> str:
        return (f"<LineWriter waiting={len(self._lines)} written={self.written} "
                f"dropped={self.dropped}>")

    def put(self, line: bytes | Deferred) -> None:
        if len(self._lines) >= self._limit:
            self.dropped += 1
            return
        self._lines.append(line)
        if not self._woken:
            self._woken = True
            self._wake.set()

    def flush(self, timeout: float = FLUSH_TIMEOUT) -> bool:
        """Wait until every line put so far is written; False if the stream stayed stuck."""
        if not self._thread.is_alive():
            return False
        written = threading.Event()
        self._lines.append(written)
        self._wake.set()
        return written.wait(timeout)

    def close(self, timeout: float = FLUSH_TIMEOUT) -> None:
        """Write what is waiting and stop the thread (given up on after ``timeout``)."""
        self.flush(timeout)
        self._closed = True
        self._wake.set()
        self._thread.join(timeout)

    def _run(self) -> None:
        while not self._closed:
            self._wake.wait()
            time.sleep(GATHER_SECONDS)  # the flag stays set: puts meanwhile only append
            self._wake.clear()  # before draining: a line put after this wakes us again
            self._woken = False  # after the clear, or a put in between would be lost
            self._drain()

    def _drain(self) -> None:
        batch: list[bytes] = []
        lines = self._lines  # popleft, not a swap: put() may still hold the old deque
        while lines:
            item = lines.popleft()
            if isinstance(item, tuple):  # first: under load nearly every line is a request's
                try:
                    batch.append(item[0](item))
                except Exception:  # a line that cannot be rendered is lost, not the writer
                    self.dropped += 1
            elif isinstance(item, bytes):
                batch.append(item)
            else:
                self._write(batch)  # a flush marker: everything before it goes out first
                batch = []
                item.set()
        self._write(batch)

    def _write(self, batch: list[bytes]) -> None:
        if not batch:
            return
        try:
            data = b"".join(batch)
        except TypeError:  # a renderer that broke its type: its lines are lost, not the rest
            kept = [line for line in batch if isinstance(line, bytes)]
            self.dropped += len(batch) - len(kept)
            batch, data = kept, b"".join(kept)
        try:
            self._stream.write(data)
            self._stream.flush()
        except (OSError, ValueError):  # stdout closed or gone: the lines are lost, not us
            self.dropped += len(batch)
            return
        self.written += len(batch)


class JsonFormatter(logging.Formatter):
    """One JSON object per line; UTC timestamps (``iso`` caches each second's text)."""

    def format(self, record: logging.LogRecord) -> str:
        return render(record, json_line).decode()


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return render(record, text_line).decode()


def render(record: logging.LogRecord, line: LineFormat) -> bytes:
    fields: dict[str, Any] = {}
    cid = correlation_id.get()
    if cid:
        fields["correlation_id"] = cid
    attributes = vars(record)
    for key in sorted(attributes.keys() - _STANDARD):  # what was passed in ``extra``
        if not key.startswith("_"):
            fields[key] = attributes[key]
    if record.exc_info:
        fields["exc"] = logging.Formatter().formatException(record.exc_info)
    return line(int(record.created * 1000), record.levelname.lower(), record.name,
                record.getMessage(), fields)


class WriterHandler(logging.Handler):
    """Formats on the caller's thread, writes on the writer's."""

    def __init__(self, writer: LineWriter, line: LineFormat) -> None:
        super().__init__()
        self.writer, self._line = writer, line

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.writer.put(render(record, self._line))
        except Exception:
            self.handleError(record)

    def flush(self) -> None:
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()
        super().close()


_handler: WriterHandler | None = None


def configure(level: str, fmt: str) -> None:
    """Send every log line to stdout in the chosen format (called by the CLI only)."""
    global _handler  # noqa: PLW0603 - logging's handlers are process-wide, and so is this
    if _handler is not None:
        _handler.close()
    _handler = WriterHandler(LineWriter(sys.stdout.buffer), LINE_FORMATS[fmt])
    root = logging.getLogger()
    root.handlers[:] = [_handler]
    root.setLevel(level.upper())


def writer() -> LineWriter | None:
    """The writer :func:`configure` set up, while it is still the root logger's handler
    (None where logging was left as it was, or has been set up anew since)."""
    if _handler is None or _handler not in logging.getLogger().handlers:
        return None
    return _handler.writer


def flush() -> None:
    """Wait (a bounded time) until every line logged so far is written."""
    if _handler is not None:
        _handler.flush()


def redacted_url(url: str) -> str:
    """``url`` with its password, if any, shown as ``***`` (for messages and logs)."""
    url = re.sub(r"([?&]password=)[^&]*", r"\1***", url)
    scheme, sep, rest = url.partition("://")
    userinfo, at, _host = rest.partition("/")[0].rpartition("@")
    if not sep or not at or ":" not in userinfo:
        return url
    return f"{scheme}://{userinfo.split(':', 1)[0]}:***@{rest[len(userinfo) + 1:]}"
