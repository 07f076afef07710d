"""One log line per request, with secrets in query strings (``token=``) redacted.

On the request's path the logger only records what the line needs, as one tuple handed to
the log writer's thread (:class:`~toombos_edge.logs.LineWriter`), which renders it with
the lines around it: no ``LogRecord``, no formatter, no string work and no write on the
event loop. ``bench/http_rps.py`` measures what the access log costs ``/health`` (on
against off, same run): rendering each line in the handler cost about 10 µs of CPU a
request, twice what the same work costs in a batch.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from functools import partial
from typing import Any
from urllib.parse import parse_qsl, unquote

import orjson
from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

from .. import logs
from ..appkeys import CORRELATION_ID
from ..ids import iso

# Compared lower-cased: ``?Token=`` is as secret as ``?token=``.
SECRET_PARAMS = frozenset(
    {"token", "access_token", "api_key", "apikey", "api-key", "key", "secret", "password"}
)


#: ``name=value`` of a secret parameter in a raw query, the name right after ``?`` or ``&``.
_SECRET_VALUE = re.compile(
    r"(?i)(?<=[?&])(" + "|".join(re.escape(name) for name in sorted(SECRET_PARAMS)) + r")=[^&]*")


def loggable_url(raw: str) -> str:
    """The path and query as sent (``raw_path``), secret parameters' values as ``***``.

    A query with escapes is decoded first, so that an escaped name (``to%6Ben=``) is known
    for what it is.
    """
    query_at = raw.find("?")
    if query_at < 0:
        return raw
    if "%" not in raw and "+" not in raw:
        return _SECRET_VALUE.sub(r"\1=***", raw)
    query = parse_qsl(raw[query_at + 1:], keep_blank_values=True)
    parts = [f"{k}={'***' if k.lower() in SECRET_PARAMS else v}" for k, v in query]
    return f"{unquote(raw[:query_at])}?{'&'.join(parts)}"


#: What :meth:`AccessLogger.log` records of a request: (its renderer, wall-clock ns, method,
#: raw path, status, seconds taken, client address, correlation id).
Row = tuple[Any, int, str, str, int, float, str | None, str | None]


def renderer(line: logs.LineFormat, logger: str) -> Callable[[Row], bytes]:
    """What turns a row into its line, on the writer's thread, in format ``line``."""
    if line is logs.json_line:
        return partial(json_line, logger)
    return partial(_general_line, line, logger)


def _general_line(line: logs.LineFormat, logger: str, row: Row) -> bytes:
    message, fields = _message(row)
    return line(row[1] // 1_000_000, "info", logger, message, fields)


#: The JSON line of a request whose path and query need neither escaping nor redaction,
#: which is nearly every request: one ``%`` where a dict for orjson costs three times as
#: much, and at 10k requests/s that difference alone was 3% of ``/health``'s throughput.
#: The method needs no escaping (an HTTP token: no quote, no backslash), nor the logger's
#: name (ours), nor the request id (one the pipeline checked or made: ``[A-Za-z0-9._:-]``).
_PLAIN_LINE = ('{"ts":"%s","level":"info","logger":"%s","msg":"%s %s %d",'
               '"duration_ms":%.3f,"remote":"%s","request_id":"%s","status":%d}\n')


def json_line(logger: str, row: Row) -> bytes:
    """What ``logs.json_line`` makes of the row (the default format)."""
    _, ns, method, raw_path, status, seconds, remote, request_id = row
    # One check for both (a Unix socket's peer is a path): no query, which could hold a
    # secret, and nothing JSON must escape.
    if request_id is not None and remote is not None and _is_plain(raw_path + remote):
        return (_PLAIN_LINE % (iso(ns // 1_000_000), logger, method, raw_path, status,
                               seconds * 1000, remote, request_id, status)).encode()
    return orjson.dumps({
        "ts": iso(ns // 1_000_000),
        "level": "info",
        "logger": logger,
        "msg": f"{method} {loggable_url(raw_path)} {status}",
        "duration_ms": round(seconds * 1000, 3),
        "remote": remote,
        "request_id": request_id,
        "status": status,
    }, option=orjson.OPT_APPEND_NEWLINE)


def _is_plain(text: str) -> bool:
    return (text.isascii() and text.isprintable() and "?" not in text
            and '"' not in text and "\\" not in text)


def _message(row: Row) -> tuple[str, dict[str, Any]]:
    _, _, method, raw_path, status, seconds, remote, request_id = row
    fields = {
        "duration_ms": round(seconds * 1000, 3),
        "remote": remote,
        "request_id": request_id,
        "status": status,
    }
    return f"{method} {loggable_url(raw_path)} {status}", fields


class AccessLogger(AbstractAccessLogger):
    """aiohttp makes one per connection; its ``access_log_format`` names the line format
    here: ``json`` or ``text``."""

    def __init__(self, logger: logging.Logger, log_format: str) -> None:
        super().__init__(logger, log_format)
        line = logs.LINE_FORMATS.get(log_format, logs.json_line)
        self._render = renderer(line, logger.name)
        self._writer = logs.writer()
        #: The connection's peer, read from its first request: ``request.remote`` asks the
        #: transport again for every request.
        self._remote: str | None = None

    @property
    def enabled(self) -> bool:
        """aiohttp neither times nor logs a request when this is false (level above INFO)."""
        return self.logger.isEnabledFor(logging.INFO)

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time_: float) -> None:
        try:  # not Mapping.get, which costs a third of this function
            request_id = request[CORRELATION_ID]
        except KeyError:  # refused before the pipeline ran (a malformed request)
            request_id = None
        remote = self._remote
        if remote is None:
            remote = self._remote = request.remote
        row: Row = (self._render, time.time_ns(), request.method, request.raw_path,
                    response.status, time_, remote, request_id)
        if self._writer is None:  # logging not set up by the CLI (an embedding program)
            message, fields = _message(row)
            self.logger.info(message, extra=fields)
            return
        self._writer.put(row)
