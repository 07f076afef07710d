"""Every answer of a route checked against what the route table declares (tests only).

With ``TOOMBOS_VALIDATE_RESPONSES`` (the test fixtures set it) each route's pipeline is
wrapped at registration: a status the route does not declare, a media type it does not
name, or a JSON body that does not decode as the declared type for that status becomes a
500 saying which. Off (the default), nothing is wrapped: production pays nothing.
"""

from __future__ import annotations

import logging
from typing import Any

import msgspec
from aiohttp import web
from aiohttp.typedefs import Handler

from .contract import ErrorBody, Media, Replies, RouteLike, all_replies
from .failures import error_response

log = logging.getLogger(__name__)
#: A 500 is every route's ``default`` reply, in the one error shape.
SERVER_ERROR = 500


def checked(route: RouteLike, handler: Handler) -> Handler:
    """``handler`` (a route's whole pipeline) with its answers checked."""
    expected = all_replies(route.method, route.role, route.body, route.query, route.replies,
                           probe=route.probe)
    name = f"{route.method} {route.path}"

    async def check(request: web.Request) -> web.StreamResponse:
        response = await handler(request)
        problem = mismatch(expected, response)
        if problem is None:
            return response
        log.error("%s answered against its declared replies: %s", name, problem)
        return error_response(500, "reply_mismatch", f"{name}: {problem}")

    check.__edge__ = True  # type: ignore[attr-defined]
    return check


def mismatch(expected: Replies, response: web.StreamResponse) -> str | None:
    """What is wrong with ``response`` against the replies by status, or None."""
    status = response.status
    if status not in expected and status != SERVER_ERROR:
        return f"status {status}, which it does not declare (it declares {sorted(expected)})"
    kind = expected.get(status, ErrorBody)
    if not isinstance(response, web.Response) or kind is None:
        return None  # a stream, a file or an upgrade: its status is all there is to check
    media = response.content_type
    if isinstance(kind, Media):
        if media not in kind.types and "*/*" not in kind.types:
            return f"{status} as {media}, not one of {', '.join(kind.types)}"
        kind = (kind.fields or {}).get(media)
        if kind is None:
            return None
    if media != "application/json":
        return f"{status} as {media}, not JSON"
    return _body_problem(status, response.body, kind)


def _body_problem(status: int, body: Any, kind: type[Any]) -> str | None:
    try:
        msgspec.json.decode(body if isinstance(body, bytes) else b"", type=kind)
    except msgspec.ValidationError as exc:
        return f"{status} does not match {kind.__name__}: {exc}"
    except msgspec.DecodeError as exc:
        return f"{status} is not JSON: {exc}"
    return None
