"""The request pipeline: correlation id, CORS, auth by role, every failure a JSON error
(its shape in :mod:`.failures`).

Not an aiohttp middleware: :func:`edge` wraps each route's handler when the route table is
registered, with the route's role bound in. aiohttp then runs no middleware chain at all
(its own plus ours were two coroutine layers per request, about 4% of a ``/health``
request in instructions, measured with callgrind). Requests no route matches reach the
catch-all :func:`.failures.unmatched` (a JSON 404 or 405), itself wrapped; a route
registered outside the table stops the server at start (:func:`refuse_unwrapped_routes`).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import re
import secrets
from collections.abc import Awaitable, Mapping
from functools import partial
from time import perf_counter
from typing import TYPE_CHECKING, Any

from aiohttp import hdrs, web
from aiohttp.typedefs import Handler

from ..appkeys import BUS, CORRELATION_ID, IDP, KEYS, LIFECYCLE, LIMITER, PRINCIPAL, SETTINGS
from ..client_ip import client_ip
from ..errors import (
    EdgeError,
    Forbidden,
    NotFound,
    RateLimited,
    Unauthorized,
)
from ..events import AUTH_REFUSED, ERROR, RATE_LIMITED, Event
from ..idp import TokenVerifier, looks_like_jwt
from ..ids import iso, now_ms
from ..keys import Role, bearer_secret
from ..logs import Actor, correlation_id, requester
from ..metrics import RouteMeter
from .contract import Decode, TypedHandler
from .failures import error_response, failure_response

if TYPE_CHECKING:
    from .throttle import Throttle

log = logging.getLogger(__name__)

#: Matched whole (``fullmatch``): ``$`` would also let a trailing newline through, into the
#: response's header and the access log's line.
_CORRELATION_RE = re.compile(r"[A-Za-z0-9._:\-]{1,128}")
_REQUEST_PREFIX = f"req_{secrets.token_hex(6)}"  # random per process: unique across restarts
# From 2**32: every id has at least nine hex digits without a padded format (which costs).
_request_counter = itertools.count(1 << 32)
CORRELATION_HEADER = "X-Correlation-ID"
SERVER = "toombos-edge"
CORS_METHODS = "GET, POST, PUT, PATCH, DELETE, OPTIONS"
CORS_HEADERS = "Authorization, Content-Type, X-Correlation-ID"
#: What a page of another allowed origin may read: the correlation id, and when to retry.
CORS_EXPOSED = "X-Correlation-ID, Retry-After, RateLimit, RateLimit-Policy"


def _request_id() -> str:
    """A unique id for a request that brought none (a counter: ids cost per request)."""
    return f"{_REQUEST_PREFIX}{next(_request_counter):x}"


def edge(
    handler: TypedHandler, role: Role | None, meter: RouteMeter, *, gated: bool = False,
    throttle: Throttle | None = None, decode: Decode | None = None,
) -> Handler:
    """``handler`` behind the pipeline: a key of at least ``role`` (None: public); ``meter``
    counts each answer's status and latency; ``gated``: a WebSocket whose upgrade the gate
    authenticates (origin first, then a key or token); ``throttle``: the rate limits (None:
    a probe, or rate limits off); ``decode``: the route's typed body or query, read after
    the key is checked and handed to the handler."""

    async def pipeline(request: web.Request) -> web.StreamResponse:
        started = perf_counter()
        # Known to the lifecycle while handled: a stop waits for it, then answers it 503.
        inflight, task = request.app[LIFECYCLE].inflight, asyncio.current_task()
        inflight.add(task)  # type: ignore[arg-type]
        sent = request.headers.get(CORRELATION_HEADER)
        cid = sent if sent and _CORRELATION_RE.fullmatch(sent) else _request_id()
        request[CORRELATION_ID] = cid
        token = correlation_id.set(cid)
        # Only routes that need a key: a probe storm pays nothing for the activity log.
        who = requester.set(partial(actor_of, request)) if role is not None else None
        try:
            if request.method == hdrs.METH_OPTIONS and _is_preflight(request):
                response: web.StreamResponse = _preflight(request)
            else:
                pending = _admit(request, role, gated, throttle)
                if pending is not None:  # an identity-provider token, not a key
                    await pending
                if request.match_info and _names_nul(request.match_info):
                    raise NotFound("no such resource: an id holds the NUL character")
                response = await (handler(request) if decode is None
                                  else handler(request, await decode(request)))
        except asyncio.CancelledError:
            response = _stopping_response(request, task, gated)  # or raises on
        except Exception as exc:
            response = failure_response(request, exc)
            if response.status in (401, 403, 429) or response.status >= 500:
                _publish_failure(request, gated, response.status, exc)
        finally:
            correlation_id.reset(token)
            inflight.discard(task)
            if who is not None:
                requester.reset(who)
        if not response.prepared:
            _edge_headers(request, response, cid)
        meter.record(response.status, perf_counter() - started)
        return response

    pipeline.__edge__ = True  # type: ignore[attr-defined]
    return pipeline


def _names_nul(match: Mapping[str, str]) -> bool:
    """A path parameter holding NUL names nothing (PostgreSQL could not even look it up)."""
    return any("\x00" in value for value in match.values())


def _admit(request: web.Request, role: Role | None, gated: bool,
           throttle: Throttle | None) -> Awaitable[None] | None:
    """Let the request in, or raise: its key (by ``role``) and the rate limits. A WebSocket
    upgrade is the gate's: its key or token, and its per-IP limit of open sockets. An
    identity-provider token is checked by the awaitable returned."""
    if role is None:
        if throttle is not None:
            throttle.anonymous(request)
        return None
    if gated and _is_upgrade(request):
        return None
    if throttle is None:
        return authorize(request, role)
    return throttle.authorize(request, role)  # authorize() between its buckets


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


async def refuse_unwrapped_routes(app: web.Application) -> None:
    """At start: every route must come from the route table (so it has a role)."""
    stray = [f"{route.method} {route.resource.canonical if route.resource else '?'}"
             for route in app.router.routes() if not getattr(route.handler, "__edge__", False)]
    if stray:
        raise RuntimeError(f"routes outside the route table (no role): {', '.join(stray)}")


def actor_of(request: web.Request) -> Actor:
    """Who made ``request``: its client IP, and its key once authenticated."""
    forwarded = ",".join(request.headers.getall(hdrs.X_FORWARDED_FOR, ()))
    ip = client_ip(request.remote, forwarded, request.app[SETTINGS].trusted_proxies)
    key = request.get(PRINCIPAL)
    return Actor(ip) if key is None else Actor(ip, key.id, key.name)


def _route(request: web.Request) -> str:
    """The route's template (``/api/jobs/{job_id}``), never the raw path with its ids."""
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else request.path


def _publish_failure(request: web.Request, gated: bool, status: int, exc: Exception) -> None:
    """A refusal (401, 403, 429) or a server error (5xx) on the bus, for the activity log
    and, for errors, the dashboards (seed 004's ``error`` shape). A WebSocket upgrade's
    refusals are the gate's to publish (``ws_connection``), with their reason. Who made the
    request is not in the event (dashboards see errors): the activity log asks ``requester``.
    A rate limit's refusal is counted each time, published the first time in a row."""
    if isinstance(exc, RateLimited):
        request.app[LIMITER].record(exc)
        if not exc.first:
            return
    elif status == 429 or (gated and _is_upgrade(request)):
        return
    # Our own errors' messages only: another exception's text may quote anything, secrets too.
    message = exc.message if isinstance(exc, EdgeError) else (
        exc.reason if isinstance(exc, web.HTTPException) else "internal server error")
    data: dict[str, object] = {"status": status, "method": request.method,
                               "route": _route(request), "endpoint": request.path,
                               "message": message}
    if status >= 500:
        event = Event.data(ERROR, {"error_type": type(exc).__name__, **data,
                                   "timestamp": iso(now_ms())})
    elif isinstance(exc, RateLimited):
        event = Event.data(RATE_LIMITED, {**data, **exc.details})
    else:
        event = Event.data(AUTH_REFUSED, data)
    token = requester.set(partial(actor_of, request))  # also on a public route
    try:
        request.app[BUS].publish(event)
    finally:
        requester.reset(token)


def authorize(request: web.Request, role: Role) -> Awaitable[None] | None:
    """A key of at least ``role``; raises Unauthorized or Forbidden.

    A known key is the request's PRINCIPAL (also when its role is too low). A bearer that
    is no key but a JWT, with identity-provider tokens on, is checked by the awaitable
    returned (the key path stays synchronous: it is every request's).
    """
    secret = bearer_secret(request.headers.get(hdrs.AUTHORIZATION, ""))
    if secret is None:
        raise Unauthorized("missing API key: send 'Authorization: Bearer <key>'")
    key = request.app[KEYS].authenticate(secret)
    if key is None:
        idp = request.app.get(IDP)
        if idp is not None and looks_like_jwt(secret):
            return _authorize_token(request, role, idp, secret)
        raise Unauthorized("invalid or revoked API key")
    request[PRINCIPAL] = key  # before the role check: a refusal names the key it refused
    if key.role < role:
        raise Forbidden(f"this needs the {role.name} role; the key has {key.role.name}")
    return None


async def _authorize_token(request: web.Request, role: Role, idp: TokenVerifier,
                           token: str) -> None:
    identity = await idp.verify(token)
    request[PRINCIPAL] = identity  # the token's subject, also when its role is too low
    if identity.role < role:
        raise Forbidden(f"this needs the {role.name} role; the token has {identity.role.name}")


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
        headers[hdrs.ACCESS_CONTROL_EXPOSE_HEADERS] = CORS_EXPOSED
