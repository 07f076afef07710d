"""One log line per request, with secrets in query strings (``token=``) redacted.

The line is rendered straight to bytes and handed to the log writer's thread
(:class:`~toombos_edge.logs.LineWriter`): no ``LogRecord``, no formatter, no write on the
event loop. On `/health` that keeps the access log's cost under a tenth of the request's
(``bench/http.py`` runs with it on and off).
"""

from __future__ import annotations

import logging
import re
import time

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

from .. import logs
from ..appkeys import CORRELATION_ID

# Compared lower-cased: ``?Token=`` is as secret as ``?token=``.
SECRET_PARAMS = frozenset(
    {"token", "access_token", "api_key", "apikey", "api-key", "key", "secret", "password"}
)


#: ``name=value`` of a secret parameter in a raw query, the name right after ``?`` or ``&``.
_SECRET_VALUE = re.compile(
    r"(?i)(?<=[?&])(" + "|".join(re.escape(name) for name in sorted(SECRET_PARAMS)) + r")=[^&]*")


def loggable_url(request: web.BaseRequest) -> str:
    """The path and query as sent, with secret parameters' values replaced by ``***``.

    Read from the raw request line: building the parsed URL and its query for every line
    cost more than the rest of the line. A query with escapes is decoded first, so that an
    escaped name (``to%6Ben=``) is known for what it is.
    """
    raw = request.raw_path
    query_at = raw.find("?")
    if query_at < 0:
        return raw
    if "%" not in raw and "+" not in raw:
        return _SECRET_VALUE.sub(r"\1=***", raw)
    query = request.rel_url.query
    parts = [f"{k}={'***' if k.lower() in SECRET_PARAMS else v}" for k, v in query.items()]
    return f"{request.path}?{'&'.join(parts)}"


class AccessLogger(AbstractAccessLogger):
    """aiohttp makes one per connection; its ``access_log_format`` names the line format
    here: ``json`` or ``text``."""

    def __init__(self, logger: logging.Logger, log_format: str) -> None:
        super().__init__(logger, log_format)
        self._line = logs.LINE_FORMATS.get(log_format, logs.json_line)
        self._writer = logs.writer()
        #: The connection's peer, read from its first request: ``request.remote`` asks the
        #: transport again for every request (a microsecond of the access log's few).
        self._remote: str | None = None

    @property
    def enabled(self) -> bool:
        """aiohttp neither times nor logs a request when this is false (level above INFO)."""
        return self.logger.isEnabledFor(logging.INFO)

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time_: float) -> None:
        status = response.status
        try:  # not Mapping.get, which costs a third of this function
            request_id = request[CORRELATION_ID]
        except KeyError:  # refused before the pipeline ran (a malformed request)
            request_id = None
        remote = self._remote
        if remote is None:
            remote = self._remote = request.remote
        fields = {
            "duration_ms": round(time_ * 1000, 3),
            "remote": remote,
            "request_id": request_id,
            "status": status,
        }
        message = f"{request.method} {loggable_url(request)} {status}"
        if self._writer is None:  # logging not set up by the CLI (an embedding program)
            self.logger.info(message, extra=fields)
            return
        self._writer.put(self._line(
            time.time_ns() // 1_000_000, "info", self.logger.name, message, fields))
