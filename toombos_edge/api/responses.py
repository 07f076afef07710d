"""JSON out, with orjson, and the one error body shape (JSON in: :mod:`.contract`)."""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web
from multidict import CIMultiDict

# Copied by each response (a C-level copy, cheaper than content_type= and its checks).
_JSON_HEADERS = CIMultiDict({"Content-Type": "application/json"})


def json_response(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, headers=_JSON_HEADERS)


def json_bytes(body: bytes, status: int = 200) -> web.Response:
    """A response of JSON already encoded (a cached body)."""
    return web.Response(body=body, status=status, headers=_JSON_HEADERS)


def error_body(status: int, code: str, message: str, details: Any = None) -> dict[str, Any]:
    """``{"detail": msg, "error": {message, code, status, details}}`` (both clients read it)."""
    return {
        "detail": message,
        "error": {"message": message, "code": code, "status": status, "details": details},
    }
