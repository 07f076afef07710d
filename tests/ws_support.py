"""Helpers for the realtime tests: apps with chosen settings, raw upgrades, waiting."""

from __future__ import annotations

import asyncio
import base64
import os
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiohttp import ClientWebSocketResponse, WSMsgType, web
from aiohttp.test_utils import TestClient

Client = TestClient[Any, web.Application]
ClientFactory = Callable[..., Awaitable[Client]]
TIMEOUT = 5.0


def admin_secret(client: Client) -> str:
    from toombos_edge.appkeys import SETTINGS

    return (client.app[SETTINGS].data_dir / "admin.key").read_text().strip()


def upgrade(**extra: str) -> dict[str, str]:
    """Headers of a WebSocket handshake, to read a refusal's status and body over HTTP."""
    key = base64.b64encode(os.urandom(16)).decode()
    return {"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "13",
            "Sec-WebSocket-Key": key, **extra}


async def next_json(ws: ClientWebSocketResponse, within: float = TIMEOUT) -> dict[str, Any]:
    message = await ws.receive(timeout=within)
    assert message.type is WSMsgType.TEXT, (message.type, message.data)
    value: dict[str, Any] = orjson.loads(message.data)
    return value


async def until_type(
    ws: ClientWebSocketResponse, type_: str, within: float = TIMEOUT
) -> dict[str, Any]:
    """The next message of this type (others are skipped)."""
    async with asyncio.timeout(within):
        while True:
            message = await next_json(ws)
            if message["type"] == type_:
                return message


async def closed(ws: ClientWebSocketResponse, within: float = TIMEOUT) -> int | None:
    """Read until the server closes; the close code."""
    async with asyncio.timeout(within):
        while True:
            message = await ws.receive()
            if message.type in (WSMsgType.CLOSE, WSMsgType.CLOSED, WSMsgType.ERROR):
                return ws.close_code


async def raw_cycle(host: str, port: int, path: str, *, graceful: bool) -> int:
    """Open a socket over bare TCP, then close it properly (a close frame, the server's
    reply) or vanish without a word; the handshake's status."""
    reader, writer = await asyncio.open_connection(host, port)
    headers = "".join(f"{k}: {v}\r\n" for k, v in upgrade(Host=f"{host}:{port}").items())
    writer.write(f"GET {path} HTTP/1.1\r\n{headers}\r\n".encode())
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    if graceful and status == 101:
        mask = os.urandom(4)
        code = bytes(b ^ mask[i] for i, b in enumerate((1000).to_bytes(2, "big")))
        writer.write(bytes([0x88, 0x82]) + mask + code)  # a masked close frame, code 1000
        while (await reader.read(4096)) and not writer.is_closing():
            pass  # frames, then the server's close reply, then EOF
    writer.transport.abort()
    return status
