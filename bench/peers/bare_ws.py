"""The ceiling for WebSocket broadcast: bare aiohttp on uvloop, no gate, no hub.

``GET /ws`` holds a socket; ``POST /broadcast`` sends the request body, as one text
message, to every socket with ``send_str`` in a loop: what a plain aiohttp app does.

Usage: python bench/peers/bare_ws.py PORT
"""

from __future__ import annotations

import sys

import uvloop
from aiohttp import web

SOCKETS: set[web.WebSocketResponse] = set()


async def ready(request: web.Request) -> web.Response:
    return web.json_response({"ready": True})


async def socket(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse(compress=False)
    await ws.prepare(request)
    SOCKETS.add(ws)
    try:
        async for _message in ws:
            pass
    finally:
        SOCKETS.discard(ws)
    return ws


async def broadcast(request: web.Request) -> web.Response:
    text = (await request.read()).decode()
    for ws in list(SOCKETS):
        await ws.send_str(text)
    return web.json_response({"sent": len(SOCKETS)}, status=202)


def main() -> None:
    app = web.Application()
    app.router.add_get("/ready", ready)
    app.router.add_get("/ws", socket)
    app.router.add_post("/broadcast", broadcast)
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None,
                loop=uvloop.new_event_loop())


if __name__ == "__main__":
    main()
