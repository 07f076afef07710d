"""The request pipeline: correlation id, CORS, auth by role, every failure a JSON error.

Not an aiohttp middleware: :func:`edge` wraps each route's handler when the route table is
registered, with the route's role bound in. aiohttp then runs no middleware chain at all
(its own plus ours were two coroutine layers per request, about 4% of a ``/health``
request in instructions, measured with callgrind). Requests no route matches reach the
catch-all :func:`unmatched` (a JSON 404 or 405), itself wrapped; a route registered outside
the table stops the server at start (:func:`refuse_unwrapped_routes`).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import re
import secrets
from typing import Any

from aiohttp import hdrs, web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.typedefs import Handler
from aiohttp.web_protocol import RequestPayloadError

from ..appkeys import CORRELATION_ID, KEYS, LIFECYCLE, PRINCIPAL, SETTINGS
from ..errors import EdgeError, Forbidden, Unauthorized
from ..keys import Role
from ..logs import correlation_id
from .responses import error_body, json_response

log = logging.getLogger(__name__)

_CORRELATION_RE = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")
_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "invalid",
    429: "too_many_requests",
    503: "unavailable",
}
_REQUEST_PREFIX = f"req_{secrets.token_hex(6)}"  # random per process: unique across restarts
# From 2**32: every id has at least nine hex digits without a padded format (which costs).
_request_counter = itertools.count(1 << 32)
CORRELATION_HEADER = "X-Correlation-ID"
SERVER = "toombos-edge"
CORS_METHODS = "GET, POST, PUT, PATCH, DELETE, OPTIONS"
CORS_HEADERS = "Authorization, Content-Type, X-Correlation-ID"


def error_response(status: int, code: str, message: str, details: object = None) -> web.Response:
    response = json_response(error_body(status, code, message, details), status=status)
    if status == 401:
        response.headers[hdrs.WWW_AUTHENTICATE] = "Bearer"
    return response


def _request_id() -> str:
    """A unique id for a request that brought none (a counter: ids cost per request)."""
    return f"{_REQUEST_PREFIX}{next(_request_counter):x}"


def edge(handler: Handler, role: Role | None, *, gated: bool = False) -> Handler:
    """``handler`` behind the pipeline: a key of at least ``role`` (None: public); ``gated``:
    a WebSocket whose upgrade the gate authenticates (origin first, then a key or token)."""

    async def pipeline(request: web.Request) -> web.StreamResponse:
        # Known to the lifecycle while handled: a stop waits for it, then answers it 503.
        inflight, task = request.app[LIFECYCLE].inflight, asyncio.current_task()
        inflight.add(task)  # type: ignore[arg-type]
        sent = request.headers.get(CORRELATION_HEADER)
        cid = sent if sent and _CORRELATION_RE.match(sent) else _request_id()
        request[CORRELATION_ID] = cid
        token = correlation_id.set(cid)
        try:
            if request.method == hdrs.METH_OPTIONS and _is_preflight(request):
                response: web.StreamResponse = _preflight(request)
            else:
                if role is not None and not (gated and _is_upgrade(request)):
                    authorize(request, role)
                response = await handler(request)
        except EdgeError as exc:
            response = error_response(exc.status, exc.code, exc.message, exc.details)
            response.headers.update(exc.headers)
        except web.HTTPException as exc:
            response = _from_http_exception(exc)
        except (RequestPayloadError, HttpProcessingError):
            # Raised by request.read() and friends in any handler: a body that lies about its
            # Content-Encoding, or one cut short. The client's fault, so never a 500.
            response = error_response(400, "bad_request", "the request body could not be "
                                      "read: a wrong Content-Encoding, or the body was cut short")
        except asyncio.CancelledError:
            response = _stopping_response(request, task, gated)  # or raises on
        except Exception:
            log.exception("unhandled error on %s %s", request.method, request.path)
            response = error_response(500, "internal_error", "internal server error")
        finally:
            correlation_id.reset(token)
            inflight.discard(task)
        if not response.prepared:
            _edge_headers(request, response, cid)
        return response

    pipeline.__edge__ = True  # type: ignore[attr-defined]
    return pipeline


def _stopping_response(request: web.Request, task: asyncio.Task[Any] | None,
                       gated: bool) -> web.Response:
    """A request the stop gave up on (it cancelled its task): 503, and the connection closes
    after it. Any other cancel (and a WebSocket's, already answered) goes on up."""
    abandoned = request.app[LIFECYCLE].abandoned
    if gated or task is None or task not in abandoned:
        raise asyncio.CancelledError
    abandoned.discard(task)
    if task.cancelling():  # (aiohttp cancels a request by failing its body's reads instead)
        task.uncancel()  # answered here: the cancel is consumed
    response = error_response(503, "unavailable", "the server is stopping; try again")
    response.headers[hdrs.RETRY_AFTER] = "1"
    response.force_close()
    return response


async def unmatched(request: web.Request) -> web.Response:
    """No route matched: 405 with ``Allow`` when the path exists for other methods, else 404."""
    allowed: set[str] = set()
    for resource in request.app.router.resources():
        if resource is not request.match_info.route.resource:
            allowed |= (await resource.resolve(request))[1]
    if allowed:
        raise web.HTTPMethodNotAllowed(request.method, allowed)
    raise web.HTTPNotFound()


async def refuse_unwrapped_routes(app: web.Application) -> None:
    """At start: every route must come from the route table (so it has a role)."""
    stray = [f"{route.method} {route.resource.canonical if route.resource else '?'}"
             for route in app.router.routes() if not getattr(route.handler, "__edge__", False)]
    if stray:
        raise RuntimeError(f"routes outside the route table (no role): {', '.join(stray)}")


def _from_http_exception(exc: web.HTTPException) -> web.StreamResponse:
    if exc.status < 400:
        return exc  # redirects pass through as they are
    response = error_response(exc.status, _HTTP_CODES.get(exc.status, "http_error"), exc.reason)
    if hdrs.ALLOW in exc.headers:
        response.headers[hdrs.ALLOW] = exc.headers[hdrs.ALLOW]
    return response


def authorize(request: web.Request, role: Role) -> None:
    """A key of at least ``role``; raises Unauthorized or Forbidden.

    On success the key is the request's PRINCIPAL.
    """
    header = request.headers.get(hdrs.AUTHORIZATION, "")
    scheme, _, secret = header.partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        raise Unauthorized("missing API key: send 'Authorization: Bearer <key>'")
    key = request.app[KEYS].authenticate(secret.strip())
    if key is None:
        raise Unauthorized("invalid or revoked API key")
    if key.role < role:
        raise Forbidden(f"this needs the {role.name} role; the key has {key.role.name}")
    request[PRINCIPAL] = key


def _is_upgrade(request: web.Request) -> bool:
    return request.headers.get(hdrs.UPGRADE, "").lower() == "websocket"


def _is_preflight(request: web.Request) -> bool:
    return hdrs.ACCESS_CONTROL_REQUEST_METHOD in request.headers


def _preflight(request: web.Request) -> web.Response:
    origin = request.headers.get(hdrs.ORIGIN, "")
    if origin not in request.app[SETTINGS].allowed_origins:
        return error_response(403, "forbidden", f"origin {origin!r} is not allowed")
    response = web.Response(status=204)
    response.headers[hdrs.ACCESS_CONTROL_ALLOW_METHODS] = CORS_METHODS
    response.headers[hdrs.ACCESS_CONTROL_ALLOW_HEADERS] = CORS_HEADERS
    response.headers[hdrs.ACCESS_CONTROL_MAX_AGE] = "600"
    return response


async def on_prepare(request: web.Request, response: web.StreamResponse) -> None:
    """The edge headers on a response a handler prepares itself (a stream, a WebSocket
    handshake); the pipeline puts them on every other answer before it is prepared."""
    if CORRELATION_HEADER not in response.headers:  # the pipeline always sets it
        _edge_headers(request, response, request.get(CORRELATION_ID))


def _edge_headers(request: web.Request, response: web.StreamResponse, cid: str | None) -> None:
    """Headers every response carries, WebSocket handshakes included."""
    if request.app[LIFECYCLE].stopping:  # the client's next request goes to a new connection
        response.force_close()
    headers = response.headers
    headers[hdrs.SERVER] = SERVER
    if cid:
        headers[CORRELATION_HEADER] = cid
    # Every answer may differ by Origin, so caches must key on it even when none was sent.
    headers.add(hdrs.VARY, hdrs.ORIGIN)
    origin = request.headers.get(hdrs.ORIGIN)
    if origin is not None and origin in request.app[SETTINGS].allowed_origins:
        # The exact origin, never "*": browsers send the Authorization header with it.
        headers[hdrs.ACCESS_CONTROL_ALLOW_ORIGIN] = origin
        headers[hdrs.ACCESS_CONTROL_EXPOSE_HEADERS] = CORRELATION_HEADER
