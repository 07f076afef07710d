"""Every failure as the one JSON error shape: what a handler raised, aiohttp's own HTTP
errors (no route, a body over the size limit), and bodies that could not be read. A 500
answers with a fixed message; the exception goes to the log, never to the client."""

from __future__ import annotations

import logging

from aiohttp import hdrs, web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestPayloadError
from aiohttp.web_urldispatcher import AbstractResource, PlainResource

from ..appkeys import SETTINGS
from ..errors import EdgeError, PayloadTooLarge
from .responses import error_body, json_response

log = logging.getLogger(__name__)

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
    507: "insufficient_storage",
}

def error_response(status: int, code: str, message: str, details: object = None) -> web.Response:
    response = json_response(error_body(status, code, message, details), status=status)
    if status == 401:
        response.headers[hdrs.WWW_AUTHENTICATE] = "Bearer"
    return response


def failure_response(request: web.Request, exc: Exception) -> web.StreamResponse:
    """The JSON answer to whatever a handler (or the auth step) raised."""
    if isinstance(exc, EdgeError):
        response = error_response(exc.status, exc.code, exc.message, exc.details)
        response.headers.update(exc.headers)
        return response
    if isinstance(exc, web.HTTPRequestEntityTooLarge):  # aiohttp's client_max_size
        limit = request.app[SETTINGS].max_body_kb
        return failure_response(request, PayloadTooLarge(
            f"the request body is larger than the limit of {limit} KiB "
            "(TOOMBOS_MAX_BODY_KB; send a file as multipart to POST /api/ingest, which "
            "streams it)",
            {"max_kb": limit}))
    if isinstance(exc, web.HTTPException):
        return _from_http_exception(exc)
    if isinstance(exc, RequestPayloadError | HttpProcessingError):
        # Raised by request.read() and friends in any handler: a body that lies about its
        # Content-Encoding, or one cut short. The client's fault, so never a 500.
        return error_response(400, "bad_request", "the request body could not be "
                              "read: a wrong Content-Encoding, or the body was cut short")
    log.exception("unhandled error on %s %s", request.method, request.path, exc_info=exc)
    return error_response(500, "internal_error", "internal server error")
async def unmatched(request: web.Request) -> web.Response:
    """No route matched: 405 with ``Allow`` when the path exists for other methods, else 404.

    ``Allow`` lists the methods of the path that matched: a fixed path (``/api/v2/content/
    sync``) before a template that also fits it (``/api/v2/content/{content_id}``), as the
    router tries them."""
    matched: list[tuple[AbstractResource, set[str]]] = []
    for resource in request.app.router.resources():
        if resource is not request.match_info.route.resource:
            methods = (await resource.resolve(request))[1]
            if methods:
                matched.append((resource, methods))
    if not matched:
        raise web.HTTPNotFound()
    fixed = [item for item in matched if isinstance(item[0], PlainResource)]
    path = (fixed or matched)[0][0].canonical
    allowed = {m for resource, methods in matched if resource.canonical == path
               for m in methods}
    raise web.HTTPMethodNotAllowed(request.method, allowed)


def _from_http_exception(exc: web.HTTPException) -> web.StreamResponse:
    if exc.status < 400:
        return exc  # redirects pass through as they are
    response = error_response(exc.status, _HTTP_CODES.get(exc.status, "http_error"), exc.reason)
    if hdrs.ALLOW in exc.headers:
        response.headers[hdrs.ALLOW] = exc.headers[hdrs.ALLOW]
    return response
