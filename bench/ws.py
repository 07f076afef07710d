"""WebSocket broadcast: toombos-edge's dashboards beside bare aiohttp, same sockets, same bytes.

For each N (1,000, 5,000, 9,000 sockets), each server runs as a subprocess pinned to CPU 0;
this process, pinned to CPU 1, holds the N sockets with a bare asyncio protocol (a frame
header parser, nothing more, so the client is not the bottleneck it is with aiohttp's
client) and triggers broadcasts over HTTP:

- toombos-edge: ``POST /admin/broadcast`` (admin key) publishes an event on the bus; the hub
  sends it to every ``/api/v1/ws/dashboard`` socket (gate, per-socket queues and all).
- bare aiohttp: ``POST /broadcast`` with the very bytes toombos-edge sends (a job object in
  the event envelope), ``send_str`` to every socket in a loop.

Measured: latency from sending the trigger to the last socket's receipt (p50/p99 over
single broadcasts with the system idle between them), messages delivered per second with
broadcasts fired back to back, and server RSS per socket (after connecting, minus before).

Then, on the same sockets, the real job path ("edge jobs", no peer): ``POST /api/jobs`` of a
no-op kind (a throwaway plugin, as bench/jobs.py loads it); the engine commits and publishes
job_created, job_update and job_completed, each to every socket. Latency is submit to the
last socket's job_completed; the rate counts all three events.

Usage: python bench/ws.py [--sizes 1000,5000,9000] [--rounds 2]
Goals (issue 4): rate >= 0.8 x bare, p99 <= 1.25 x bare at every N, < 20 KB per socket.
"""

from __future__ import annotations

import sys

# bench/http.py would shadow the standard library's http (which aiohttp imports): take this
# folder off sys.path while the libraries load, as bench/http.py does.
_BENCH = sys.path.pop(0)
import argparse
import asyncio
import base64
import os
import resource
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import uvloop

from toombos_edge.ids import iso, new_id, now_ms
from toombos_edge.jobs.model import Job, JobStatus

sys.path.append(_BENCH)
from common import PY, ROOT, free_port, rss_mb, start, stop, wait_url
from jobs import make_plugin

CONNECT_BATCH = 100
SETTLE_SECONDS = 1.0
WAIT = 60.0


def job_payload() -> dict[str, object]:
    """A job as the engine publishes it: a generate job with two channel results."""
    stamp = now_ms()
    job = Job(new_id("job"), "generate", JobStatus.completed, stamp, stamp,
              document_id=new_id("doc"), channels=["email", "website"],
              progress_percent=100.0, progress_message="done", attempts=1,
              results={c: {"status": "success", "content_id": new_id("cnt"),
                           "timestamp": iso(stamp)} for c in ("email", "website")},
              metadata={"source": "bench"}, correlation_id=new_id("req"),
              started_at=stamp, completed_at=stamp)
    return job.to_json()


COMPLETED = b'{"type":"job_completed"'


class Bench:
    """Counts, per frame number (or job_completed number), how many sockets have it; notes
    when all N do."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.have: dict[tuple[str, int], int] = {}
        self.done: dict[tuple[str, int], float] = {}
        self.waiters: dict[tuple[str, int], asyncio.Future[float]] = {}

    def frame(self, number: int, kind: str = "frame") -> None:
        key = (kind, number)
        count = self.have.get(key, 0) + 1
        self.have[key] = count
        if count == self.n:
            now = time.perf_counter()
            self.done[key] = now
            waiter = self.waiters.pop(key, None)
            if waiter is not None and not waiter.done():
                waiter.set_result(now)

    async def all_have(self, number: int, kind: str = "frame") -> float:
        key = (kind, number)
        if key in self.done:
            return self.done[key]
        waiter = self.waiters.setdefault(key, asyncio.get_running_loop().create_future())
        return await asyncio.wait_for(waiter, WAIT)


class Sock(asyncio.Protocol):
    """A WebSocket client that only parses frame headers and counts frames."""

    def __init__(self, bench: Bench, request: bytes, opened: asyncio.Future[None]) -> None:
        self.bench, self.request, self.opened = bench, request, opened
        self.transport: Any = None  # uvloop's transports are not asyncio.Transport
        self.buf = b""
        self.skip = 0
        self.frames = 0
        self.completions = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        if not self.opened.done():
            self.buf += data
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            status = self.buf.split(b" ", 2)[1]
            if status != b"101":
                self.opened.set_exception(RuntimeError(self.buf[:200].decode()))
                return
            data, self.buf = self.buf[end + 4:], b""
            self.opened.set_result(None)
        self.parse(data)

    def parse(self, data: bytes) -> None:
        if self.buf:
            data, self.buf = self.buf + data, b""
        i, n = 0, len(data)
        while i < n:
            if self.skip:
                take = min(self.skip, n - i)
                self.skip -= take
                i += take
                if not self.skip:
                    self.counted()
                continue
            if n - i < 2:
                self.buf = data[i:]
                return
            short = data[i + 1] & 0x7F
            head = 2 if short < 126 else 4 if short == 126 else 10
            if n - i < head:
                self.buf = data[i:]
                return
            size = short if head == 2 else int.from_bytes(data[i + 2:i + head], "big")
            i += head
            if data.startswith(COMPLETED, i):  # the payload's start is almost always here
                self.completions += 1
                self.bench.frame(self.completions, "completed")
            if size:
                self.skip = size
            else:
                self.counted()

    def counted(self) -> None:
        self.frames += 1
        self.bench.frame(self.frames)


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) a process has used: steadier than wall time on a busy box."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def upgrade_request(port: int, path: str) -> bytes:
    key = base64.b64encode(os.urandom(16)).decode()
    return (f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            f"Sec-WebSocket-Version: 13\r\n\r\n").encode()


@dataclass
class Result:
    name: str
    n: int
    latencies_ms: list[float] = field(default_factory=list)
    post_ms: list[float] = field(default_factory=list)
    rate: float = 0.0
    kb_per_socket: float = 0.0
    job_latencies_ms: list[float] = field(default_factory=list)
    job_rate: float = 0.0
    cpu_us_per_message: float = 0.0  #: server CPU (user + system) during the burst

    def p(self, q: float, jobs: bool = False) -> float:
        ordered = sorted(self.job_latencies_ms if jobs else self.latencies_ms)
        return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


@dataclass
class Target:
    name: str
    command: list[str]
    port: int
    ws_path: str
    trigger_path: str
    headers: dict[str, str]
    body: bytes
    greeting_frames: int  # frames a socket gets before any broadcast (connection_ack)


async def connect_all(target: Target, bench: Bench) -> list[Sock]:
    loop = asyncio.get_running_loop()
    socks: list[Sock] = []
    for first in range(0, bench.n, CONNECT_BATCH):
        batch = []
        for _ in range(first, min(first + CONNECT_BATCH, bench.n)):
            opened: asyncio.Future[None] = loop.create_future()
            sock = Sock(bench, upgrade_request(target.port, target.ws_path), opened)
            await loop.create_connection(lambda s=sock: s, "127.0.0.1", target.port)
            batch.append(opened)
            socks.append(sock)
        await asyncio.wait_for(asyncio.gather(*batch), WAIT)
    return socks


async def measure(target: Target, n: int, singles: int, burst: int, pid: int) -> Result:
    result = Result(target.name, n)
    bench = Bench(n)
    before = rss_mb(pid)
    socks = await connect_all(target, bench)
    frame = target.greeting_frames
    if frame:
        await bench.all_have(frame)
    await asyncio.sleep(SETTLE_SECONDS)
    result.kb_per_socket = (rss_mb(pid) - before) * 1024 / n
    url = f"http://127.0.0.1:{target.port}{target.trigger_path}"
    async with aiohttp.ClientSession(headers=target.headers) as http:
        for _ in range(singles):
            frame += 1
            began = time.perf_counter()
            async with http.post(url, data=target.body) as response:
                assert response.status == 202, await response.text()
            result.post_ms.append((time.perf_counter() - began) * 1000)
            result.latencies_ms.append((await bench.all_have(frame) - began) * 1000)
        began, cpu = time.perf_counter(), cpu_seconds(pid)
        for _ in range(burst):
            frame += 1
            async with http.post(url, data=target.body) as response:
                assert response.status == 202
        result.rate = n * burst / (await bench.all_have(frame) - began)
        result.cpu_us_per_message = (cpu_seconds(pid) - cpu) * 1e6 / (n * burst)
        if target.name == "toombos-edge":
            await job_path(http, target, bench, socks, singles, burst, result)
    for sock in socks:
        assert sock.transport is not None
        sock.transport.abort()
    return result


async def job_path(http: aiohttp.ClientSession, target: Target, bench: Bench,
                   socks: list[Sock], singles: int, burst: int, result: Result) -> None:
    """Submit no-op jobs; each brings job_created, job_update, job_completed to every socket."""
    url = f"http://127.0.0.1:{target.port}/api/jobs"
    done = 0
    for _ in range(singles):
        began = time.perf_counter()
        async with http.post(url, json={"kind": "noop"}) as response:
            assert response.status == 202, await response.text()
        done += 1
        result.job_latencies_ms.append((await bench.all_have(done, "completed") - began) * 1000)
    frames_before = sum(sock.frames for sock in socks)
    began = time.perf_counter()
    for _ in range(burst):
        async with http.post(url, json={"kind": "noop"}) as response:
            assert response.status == 202
    done += burst
    ended = await bench.all_have(done, "completed")
    delivered = sum(sock.frames for sock in socks) - frames_before
    result.job_rate = delivered / (ended - began)


def targets(payload: dict[str, object], data_dir: Path) -> list[Target]:
    port = free_port()
    edge = Target(
        "toombos-edge", [PY, "-m", "toombos_edge", "serve", "--port", str(port), "--data-dir",
                         str(data_dir), "--access-log", "false", "--ws-max-per-ip", "20000",
                         "--ws-heartbeat", "3600", "--ws-stats-interval", "3600",
                         "--log-level", "warning"],
        port, "/api/v1/ws/dashboard?token=ADMIN", "/admin/broadcast", {},
        orjson.dumps({"data": payload}), 1)
    sent = orjson.dumps({"type": "announcement", "data": payload, "timestamp": iso(now_ms())})
    bare_port = free_port()
    bare = Target("bare aiohttp", [PY, str(ROOT / "bench" / "peers" / "bare_ws.py"),
                                   str(bare_port)],
                  bare_port, "/ws", "/broadcast", {}, sent, 0)
    return [bare, edge]


async def run_one(target: Target, n: int, data_dir: Path) -> Result:
    proc = start(target.command, cpu=0)
    try:
        wait_url(f"http://127.0.0.1:{target.port}/ready", proc)
        if target.name == "toombos-edge":
            key = (data_dir / "admin.key").read_text().strip()
            target.ws_path = target.ws_path.replace("ADMIN", key)
            target.headers = {"Authorization": f"Bearer {key}"}
        singles = 30 if n <= 1000 else 20
        burst = max(10, 100_000 // n)
        return await measure(target, n, singles, burst, proc.pid)
    finally:
        stop(proc)


def report(bare: Result, edge: Result, round_no: int) -> None:
    for r in (bare, edge):
        print(f"{round_no:>5} {r.n:>6} {r.name:<13} {r.rate:>11,.0f} {r.p(0.5):>8.2f} "
              f"{r.p(0.99):>8.2f} {r.kb_per_socket:>8.1f} {r.cpu_us_per_message:>9.2f}")
    print(f"{'':>5} {'':>6} {'ratio':<13} {edge.rate / bare.rate:>11.2f} "
          f"{edge.p(0.5) / bare.p(0.5):>8.2f} {edge.p(0.99) / bare.p(0.99):>8.2f} "
          f"{edge.kb_per_socket / bare.kb_per_socket:>8.2f} "
          f"{edge.cpu_us_per_message / bare.cpu_us_per_message:>9.2f}")
    print(f"{round_no:>5} {edge.n:>6} {'edge jobs':<13} {edge.job_rate:>11,.0f} "
          f"{edge.p(0.5, jobs=True):>8.2f} {edge.p(0.99, jobs=True):>8.2f}")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="1000,5000,9000")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # servers inherit it
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > 1:
        os.sched_setaffinity(0, {1})
    payload = job_payload()
    plugin = make_plugin(Path(tempfile.mkdtemp(prefix="ws-bench-")) / "plugin")
    os.environ["PYTHONPATH"] = str(plugin)  # the servers' no-op kind
    print(f"event: {len(orjson.dumps(payload))} bytes of job JSON; server on CPU 0, "
          f"client on CPU 1; p50/p99 ms from trigger to the last socket's receipt")
    print(f"{'round':>5} {'N':>6} {'server':<13} {'messages/s':>11} {'p50 ms':>8} "
          f"{'p99 ms':>8} {'KB/sock':>8} {'CPU us/msg':>9}")
    for round_no in range(1, args.rounds + 1):
        for n in (int(x) for x in args.sizes.split(",")):
            with tempfile.TemporaryDirectory() as tmp:
                pair = targets(payload, Path(tmp) / "data")
                if round_no % 2 == 0:
                    pair.reverse()
                results = {t.name: await run_one(t, n, Path(tmp) / "data") for t in pair}
            report(results["bare aiohttp"], results["toombos-edge"], round_no)


if __name__ == "__main__":
    uvloop.run(main())
