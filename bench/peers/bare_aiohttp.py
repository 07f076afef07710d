"""The floor for start-up and memory: aiohttp on uvloop with one /ready route, nothing else.

Usage: python bench/peers/bare_aiohttp.py PORT
"""

from __future__ import annotations

import sys

import uvloop
from aiohttp import web


async def ready(request: web.Request) -> web.Response:
    return web.json_response({"ready": True})


def main() -> None:
    app = web.Application()
    app.router.add_get("/ready", ready)
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None,
                loop=uvloop.new_event_loop())


if __name__ == "__main__":
    main()
