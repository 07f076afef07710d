"""One client process of bench/ws.py: holds COUNT WebSockets and counts frames, no decoding.

Each socket is a bare asyncio protocol on uvloop: it reads the upgrade response, then only
the frame headers. A text frame is classed by the first bytes of its payload (an
``announcement``, a ``job_completed``, or something else such as ``connection_ack`` or
``stats_update``) and the rest of the payload is skipped unread; a ping is answered with a
masked pong, so the server's heartbeat keeps the sockets open. Nothing is parsed as JSON.

Protocol with bench/ws.py, one line each way:

- out ``ready`` once every socket is open; ``a K T`` when every socket of this process has
  received its K-th announcement (``T``: ``time.monotonic()``, one clock for all processes
  on Linux); ``j K T`` the same for job_completed; ``f N`` (text frames received so far) in
  answer to an ``f`` line on stdin.
- in: ``f``; end of stdin closes the sockets and ends the process (so does a timeout).

Usage: python bench/ws_client.py PORT PATH COUNT
"""

from __future__ import annotations

import asyncio
import base64
import functools
import os
import sys
import time
from typing import Any

import uvloop

ANNOUNCEMENT = b'{"type":"announcement"'
COMPLETED = b'{"type":"job_completed"'
PREFIX = max(len(ANNOUNCEMENT), len(COMPLETED))
CONNECT_BATCH = 100
WAIT = 60.0
LIFETIME = 900.0  # the longest a client process lives, whatever its parent does
OP_TEXT, OP_CLOSE, OP_PING = 0x1, 0x8, 0x9


class Counter:
    """For the K-th announcement (and job_completed), how many sockets have it."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.announcements: list[int] = []
        self.completions: list[int] = []
        self.frames = 0
        #: An announcement frame's first bytes (its header and type) and its whole length,
        #: from the first one parsed: the fast path's test (all announcements of a run are
        #: the same size).
        self.signature = b"\x00"
        self.length = 0

    def got(self, have: list[int], k: int, tag: bytes) -> None:
        if len(have) < k:
            have.append(0)
        have[k - 1] += 1
        if have[k - 1] == self.n:
            sys.stdout.buffer.write(b"%s %d %.6f\n" % (tag, k, time.monotonic()))
            sys.stdout.buffer.flush()


class Sock(asyncio.Protocol):
    """One WebSocket: the upgrade, then frame headers only."""

    def __init__(self, counter: Counter, request: bytes, opened: asyncio.Future[None]) -> None:
        self.counter, self.request, self.opened = counter, request, opened
        self.transport: Any = None  # uvloop's transports are not asyncio.Transport
        self.rest = b""  # an incomplete frame head carried to the next read
        self.skip = 0  # payload bytes of the current frame still to come
        self.kind = 0  # what the current frame is: 1 announcement, 2 completed, 0 other
        self.announcements = self.completions = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.transport.write(self.request)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.opened.done():
            self.opened.set_exception(ConnectionError(f"closed during the upgrade: {exc}"))

    def data_received(self, data: bytes) -> None:
        if not self.opened.done():
            self.rest += data
            end = self.rest.find(b"\r\n\r\n")
            if end < 0:
                return
            if self.rest.split(b" ", 2)[1] != b"101":
                self.opened.set_exception(RuntimeError(self.rest[:300].decode(errors="replace")))
                return
            data, self.rest = self.rest[end + 4:], b""
            self.opened.set_result(None)
        counter = self.counter
        if not self.rest and not self.skip and data.startswith(counter.signature):
            # Whole announcements only, the usual case: count them without a parse. The
            # signature cannot occur inside a JSON payload (0x81 is not UTF-8 on its own), so
            # k matches at k x length bytes from a frame's start are k announcements.
            k = 1 if len(data) == counter.length else data.count(counter.signature)
            if k * counter.length == len(data):
                counter.frames += k
                for _ in range(k):
                    self.announcements += 1
                    counter.got(counter.announcements, self.announcements, b"a")
                return
        self.parse(data)

    def parse(self, data: bytes) -> None:
        if self.rest:
            data, self.rest = self.rest + data, b""
        i, end = 0, len(data)
        while i < end:
            if self.skip:
                take = min(self.skip, end - i)
                self.skip -= take
                i += take
                if not self.skip:
                    self.done()
                continue
            if end - i < 2:
                self.rest = data[i:]
                return
            op, short = data[i] & 0x0F, data[i + 1] & 0x7F
            head = 2 if short < 126 else 4 if short == 126 else 10
            if end - i < head:
                self.rest = data[i:]
                return
            size = short if head == 2 else int.from_bytes(data[i + 2:i + head], "big")
            if op != OP_TEXT:
                if end - i < head + size:  # control frames are small: wait for all of it
                    self.rest = data[i:]
                    return
                self.control(op, data[i + head:i + head + size])
                i += head + size
                continue
            if end - i < head + min(size, PREFIX):
                self.rest = data[i:]
                return
            self.kind = (1 if data.startswith(ANNOUNCEMENT, i + head)
                         else 2 if data.startswith(COMPLETED, i + head) else 0)
            if self.kind == 1 and not self.counter.length:
                self.counter.signature = data[i:i + head] + ANNOUNCEMENT
                self.counter.length = head + size
            i += head
            if size:
                self.skip = size
            else:
                self.done()

    def done(self) -> None:
        counter = self.counter
        counter.frames += 1
        if self.kind == 1:
            self.announcements += 1
            counter.got(counter.announcements, self.announcements, b"a")
        elif self.kind == 2:
            self.completions += 1
            counter.got(counter.completions, self.completions, b"j")

    def control(self, op: int, payload: bytes) -> None:
        if op == OP_PING:  # a client's frames are masked (RFC 6455 5.3)
            mask = os.urandom(4)
            masked = bytes(b ^ mask[j % 4] for j, b in enumerate(payload))
            self.transport.write(bytes((0x8A, 0x80 | len(payload))) + mask + masked)
        elif op == OP_CLOSE:
            code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else None
            print(f"socket closed by the server: {code} {payload[2:]!r}", file=sys.stderr)
            self.transport.close()


def upgrade_request(port: int, path: str) -> bytes:
    key = base64.b64encode(os.urandom(16)).decode()
    return (f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            f"Sec-WebSocket-Version: 13\r\n\r\n").encode()


async def connect_all(port: int, path: str, counter: Counter) -> list[Sock]:
    loop = asyncio.get_running_loop()
    socks: list[Sock] = []
    for first in range(0, counter.n, CONNECT_BATCH):
        batch = []
        for _ in range(first, min(first + CONNECT_BATCH, counter.n)):
            opened: asyncio.Future[None] = loop.create_future()
            sock = Sock(counter, upgrade_request(port, path), opened)
            await loop.create_connection(functools.partial(lambda s: s, sock), "127.0.0.1",
                                         port)
            batch.append(opened)
            socks.append(sock)
        await asyncio.wait_for(asyncio.gather(*batch), WAIT)
    return socks


async def main() -> None:
    port, path, count = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    counter = Counter(count)
    socks = await connect_all(port, path, counter)
    sys.stdout.buffer.write(b"ready\n")
    sys.stdout.buffer.flush()
    loop = asyncio.get_running_loop()
    stdin = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stdin), sys.stdin)
    try:
        async with asyncio.timeout(LIFETIME):
            while line := await stdin.readline():
                if line.strip() == b"f":
                    sys.stdout.buffer.write(b"f %d\n" % counter.frames)
                    sys.stdout.buffer.flush()
    finally:
        for sock in socks:
            sock.transport.abort()


if __name__ == "__main__":
    uvloop.run(main())
