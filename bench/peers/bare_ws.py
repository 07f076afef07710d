"""The ceiling for WebSocket broadcast: bare aiohttp on uvloop, no gate, no hub.

``GET /ws`` holds a socket; ``POST /broadcast`` answers as toombos-edge's
``POST /admin/broadcast`` does: it reads ``{"data": {...}}`` (400 when the body is not
JSON, 422 when it or ``data`` is not an object, with the server's error body), wraps
``data`` once in the same envelope (``{"type": "announcement", "data": …, "timestamp":
ISO}``, orjson, encoded once), sends it to every socket with ``send_str`` in a loop (what a
plain aiohttp app does) and answers 202 ``{"published": "announcement", "timestamp": ISO}``.
Logging is on at INFO, so aiohttp's access log writes a line per request, as the server's
default access log does.

Usage: python bench/peers/bare_ws.py PORT
"""

from __future__ import annotations

import logging
import sys
import time

import orjson
import uvloop
from aiohttp import web

SOCKETS: set[web.WebSocketResponse] = set()


def iso(ms: int) -> str:
    seconds, millis = divmod(ms, 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{millis:03d}Z"


def error(status: int, code: str, message: str) -> web.Response:
    body = {"detail": message, "error": {"message": message, "code": code,
                                         "status": status, "details": None}}
    return web.Response(body=orjson.dumps(body), status=status,
                        content_type="application/json")


async def ready(request: web.Request) -> web.Response:
    return web.json_response({"ready": True})


async def socket(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    SOCKETS.add(ws)
    try:
        async for _message in ws:
            pass
    finally:
        SOCKETS.discard(ws)
    return ws


async def broadcast(request: web.Request) -> web.Response:
    raw = await request.read()
    try:
        body = orjson.loads(raw) if raw.strip() else {}
    except orjson.JSONDecodeError as exc:
        return error(400, "bad_request", f"request body is not valid JSON: {exc}")
    if not isinstance(body, dict):
        return error(422, "invalid", "request body must be a JSON object")
    data = body.get("data")
    if not isinstance(data, dict):
        return error(422, "invalid", "'data' must be a JSON object")
    stamp = time.time_ns() // 1_000_000
    text = orjson.dumps({"type": "announcement", "data": data,
                         "timestamp": iso(stamp)}).decode()
    for ws in list(SOCKETS):
        await ws.send_str(text)
    return web.Response(body=orjson.dumps({"published": "announcement",
                                           "timestamp": iso(stamp)}),
                        status=202, content_type="application/json")


def main() -> None:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    app = web.Application()
    app.router.add_get("/ready", ready)
    app.router.add_get("/ws", socket)
    app.router.add_post("/broadcast", broadcast)
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None,
                loop=uvloop.new_event_loop())


if __name__ == "__main__":
    main()
