"""Restart under load (issue 15): POST /admin/restart, SIGTERM then a start, kill -9 then a start.

    .venv/bin/python -m bench.restart [--jobs 1000] [--sockets 50] [--job-ms 30,120]
                                      [--upload-mb 4] [--upload-seconds 1.5]
                                      [--scenarios restart,sigterm,kill]

Each scenario starts the real server (``python -m toombos_edge serve``, pinned to one CPU,
its log written to a file) on a fresh data dir in its default configuration, except
TOOMBOS_WS_MAX_PER_IP (raised to hold the dashboard sockets, all from 127.0.0.1) and
PYTHONPATH naming a throwaway plugin (a ``.dist-info`` with a ``toombos_edge.handlers``
entry point) whose ``pause`` kind sleeps the time in its params and appends its job id to
a ledger at each start, so a job run twice is seen. The load, from this process on the
other CPU, to 127.0.0.1 only:

* ``--jobs`` pause jobs (each ``--job-ms`` long, drawn at random) submitted before the
  stop; the stop comes once some have run, with most still pending,
* ``--sockets`` dashboard WebSockets (``/api/v1/ws/dashboard``, the admin key) that read
  every message and reconnect 50 ms after a close (sooner than the dashboard's backoff with
  jitter: the harder case), each on a fresh connection as a browser opens them;
  ``--ws-over-keepalive`` lets the reconnects reuse the idle keep-alive connections the job
  submissions left (as aiohttp's client does when given one session),
* one client sending ``GET /health`` without pause on a keep-alive connection; a refused
  connection (ConnectionRefusedError) is counted apart from a failed request (any other
  error, or a status other than 200), and after either it waits 10 ms before trying again,
* one multipart ``POST /api/ingest`` of ``--upload-mb`` of text sent in 64 KiB chunks over
  ``--upload-seconds``; the stop is sent when two thirds of it are sent, and its answer
  (and its ingest job's end) is recorded.

Then ``restart`` sends POST /admin/restart (the process execs in place, handing its
listening socket on); ``sigterm`` sends SIGTERM, waits for the exit and starts the server
again; ``kill`` does the same with SIGKILL. The time to ``/ready`` runs from the request
(or the signal) until ``/ready`` answers 200 from the new process (``/health``'s uptime is
younger than the stop), polled every 10 ms on fresh connections not counted above. The
bench waits for every job to end, stops the server, and reads the jobs from its database:
lost is an acknowledged job (202) that did not complete; run twice is a job whose id the
ledger holds more than once (the database's attempts are shown beside it: a job claimed
but not yet started at a kill -9 counts an attempt and no run). Goals (issue 15): for the
restart 0 refused, 0 failed, 0 lost, /ready within 2 s; for both stops then a start 0 lost.
Every step has a deadline.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import uvloop

from bench import serverconfig
from bench.common import PY, ROOT, free_port, pinned, write_plugin

SERVER_CPU, CLIENT_CPU = 0, 1
CHUNK = 64 * 1024
RETRY_PAUSE = 0.01  # after a refused or failed /health, so a closed port is not a busy loop
RECONNECT_PAUSE = 0.05
GOAL_READY_S = 2.0
SCENARIOS = {"restart": "POST /admin/restart", "sigterm": "SIGTERM then a start",
             "kill": "kill -9 then a start"}
PLUGIN = '''
import asyncio, os
from toombos_edge.jobs.kinds import JobKind, Outcome

async def pause(ctx):
    # One line per start: a job whose id appears twice ran twice.
    fd = os.open(ctx.params["ledger"], os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    try:
        os.write(fd, f"{ctx.job.id}\\n".encode())
    finally:
        os.close(fd)
    await asyncio.sleep(float(ctx.params["seconds"]))
    return Outcome({"pause": {"status": "success"}})

def kinds():
    return [JobKind("pause", pause)]
'''


def make_plugin(folder: Path) -> Path:
    return write_plugin(folder, "bench_pause", "pause", PLUGIN)


def server_settings(sockets: int) -> dict[str, str]:
    """The only TOOMBOS_* variable the server gets: room for the sockets from one IP."""
    return {"TOOMBOS_WS_MAX_PER_IP": str(max(sockets, 1))}


class Server:
    """``toombos_edge serve`` on a data dir and port; started again on the same ones."""

    def __init__(self, data: Path, plugin: Path, settings: dict[str, str]) -> None:
        self.data, self.port = data, free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = data.parent / f"{data.name}.log"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("TOOMBOS_")}
        self.env.update(PYTHONPATH=str(plugin), **settings)
        self.proc: subprocess.Popen[bytes] | None = None
        self.key = ""

    def start(self) -> None:
        command = [PY, "-m", "toombos_edge", "serve", "--port", str(self.port),
                   "--data-dir", str(self.data)]
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(pinned(command, SERVER_CPU), env=self.env, cwd=ROOT,
                                         stdout=log, stderr=subprocess.STDOUT)

    def end(self, how: signal.Signals, wait: float = 30) -> float:
        """Send the signal and wait for the exit; seconds it took."""
        assert self.proc is not None
        began = time.monotonic()
        self.proc.send_signal(how)
        try:
            self.proc.wait(wait)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        return time.monotonic() - began

    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}

    def ready_lines(self) -> int:
        return self.log.read_text(errors="replace").count('"msg":"ready"')


async def ready_since(server: Server, began: float, deadline: float = 30) -> float:
    """Seconds from ``began`` until /ready is 200 from a process younger than ``began``."""
    connector = aiohttp.TCPConnector(force_close=True)
    timeout = aiohttp.ClientTimeout(total=5)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        while time.monotonic() - began < deadline:
            assert server.proc is not None
            if server.proc.poll() is not None:
                raise RuntimeError(f"server exited; see {server.log}")
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                async with session.get(server.base + "/ready") as response:
                    ok = response.status == 200
                if ok:
                    async with session.get(server.base + "/health") as response:
                        uptime = float((await response.json())["uptime"])
                    now = time.monotonic()
                    if uptime < now - began:
                        return now - began
            await asyncio.sleep(0.01)
    raise RuntimeError(f"/ready not true again within {deadline} s")


@dataclass
class Health:
    """GET /health without pause: answers, refused connections, failed requests."""

    base: str
    ok: int = 0
    refused: int = 0
    failed: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    longest_gap: float = 0.0
    running: bool = True

    async def run(self) -> None:
        timeout = aiohttp.ClientTimeout(total=20)
        connector = aiohttp.TCPConnector(limit=1)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
            last = time.monotonic()
            while self.running:
                if await self.once(session):
                    now = time.monotonic()
                    self.longest_gap, last = max(self.longest_gap, now - last), now
                else:
                    await asyncio.sleep(RETRY_PAUSE)

    async def once(self, session: aiohttp.ClientSession) -> bool:
        try:
            async with session.get(self.base + "/health") as response:
                await response.read()
                if response.status == 200:
                    self.ok += 1
                    return True
                self.fail(f"status {response.status}")
        except aiohttp.ClientConnectorError as exc:
            if isinstance(exc.os_error, ConnectionRefusedError):
                self.refused += 1
            else:
                self.fail(type(exc.os_error).__name__)
        except (aiohttp.ClientError, TimeoutError) as exc:
            self.fail(type(exc).__name__)
        return False

    def fail(self, reason: str) -> None:
        self.failed += 1
        self.reasons[reason] += 1


@dataclass
class Dashboards:
    """Dashboard sockets that read everything and reconnect after a close."""

    url: str
    headers: dict[str, str]
    acks: Counter[int] = field(default_factory=Counter)  # connection_ack per socket
    closes: Counter[int | None] = field(default_factory=Counter)
    restarting: int = 0  # `restarting` events received
    refused: int = 0
    errors: Counter[str] = field(default_factory=Counter)

    def reconnected(self) -> int:
        return sum(1 for count in self.acks.values() if count > 1)

    async def run(self, session: aiohttp.ClientSession, index: int) -> None:
        while True:
            try:
                async with session.ws_connect(self.url, headers=self.headers) as ws:
                    await self.read(ws, index)
            except aiohttp.ClientConnectorError as exc:
                if isinstance(exc.os_error, ConnectionRefusedError):
                    self.refused += 1
                else:
                    self.errors[type(exc.os_error).__name__] += 1
            except (aiohttp.ClientError, TimeoutError) as exc:
                self.errors[type(exc).__name__] += 1
            await asyncio.sleep(RECONNECT_PAUSE)

    async def read(self, ws: aiohttp.ClientWebSocketResponse, index: int) -> None:
        async for message in ws:
            if message.type is not aiohttp.WSMsgType.TEXT:
                continue
            kind = message.json().get("type")
            if kind == "connection_ack":
                self.acks[index] += 1
            elif kind == "restarting":
                self.restarting += 1
        self.closes[ws.close_code] += 1


@dataclass
class Upload:
    """One slow multipart POST /api/ingest; ``halfway`` is set at ``trigger`` of the bytes."""

    port: int
    key: str
    mb: float
    seconds: float
    trigger: float = 2 / 3
    halfway: asyncio.Event = field(default_factory=asyncio.Event)
    answer: str = "none"
    status: int = 0
    job_id: str = ""
    last_byte_at: float = 0.0

    def parts(self) -> tuple[bytes, bytes, bytes]:
        boundary = "benchrestartboundary"
        line = b"a line of text for the ingest under restart, padded to a steady width.\n"
        body = line * int(self.mb * (1 << 20) / len(line))
        head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; "
                f"filename=\"restart.txt\"\r\nContent-Type: text/plain\r\n\r\n").encode()
        tail = f"\r\n--{boundary}--\r\n".encode()
        request = (f"POST /api/ingest HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\n"
                   f"Authorization: Bearer {self.key}\r\nConnection: close\r\n"
                   f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
                   f"Content-Length: {len(head) + len(body) + len(tail)}\r\n\r\n").encode()
        return request + head, body, tail

    async def run(self) -> None:
        first, body, tail = self.parts()
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        try:
            writer.write(first)
            chunks = [body[i:i + CHUNK] for i in range(0, len(body), CHUNK)]
            try:
                await self.send(writer, chunks, tail)
            except OSError as exc:  # the server may answer, then close, before the end
                self.answer = f"{type(exc).__name__} while sending"
            await self.read_answer(reader)
        finally:
            self.halfway.set()
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    async def send(self, writer: asyncio.StreamWriter, chunks: list[bytes], tail: bytes) -> None:
        pause = self.seconds / len(chunks)
        for i, chunk in enumerate(chunks):
            writer.write(chunk)
            await writer.drain()
            if i + 1 >= self.trigger * len(chunks):
                self.halfway.set()
            await asyncio.sleep(pause)
        writer.write(tail)
        await writer.drain()
        self.last_byte_at = time.monotonic()

    async def read_answer(self, reader: asyncio.StreamReader) -> None:
        try:
            async with asyncio.timeout(30):
                raw = await reader.read()
        except (OSError, TimeoutError) as exc:
            self.answer = f"no answer ({type(exc).__name__})"
            return
        if not raw:
            self.answer = "no answer (closed)" if self.answer == "none" else self.answer
            return
        head, _, body = raw.partition(b"\r\n\r\n")
        self.status = int(head.split()[1])
        self.answer = str(self.status)
        if self.status == 202:
            self.job_id = str(json.loads(body)["job_id"])


async def submit(session: aiohttp.ClientSession, server: Server, count: int,
                 ledger: Path, job_ms: tuple[int, int]) -> set[str]:
    """Submit ``count`` pause jobs, 50 at a time; the ids acknowledged with 202."""
    async def one() -> str:
        params = {"seconds": random.uniform(*job_ms) / 1000, "ledger": str(ledger)}
        async with session.post(server.base + "/api/jobs", headers=server.auth(),
                                json={"kind": "pause", "params": params}) as response:
            if response.status != 202:
                raise RuntimeError(f"submit: {response.status} {await response.text()}")
            return str((await response.json())["job_id"])

    ids: set[str] = set()
    for done in range(0, count, 50):
        ids |= set(await asyncio.gather(*(one() for _ in range(min(50, count - done)))))
    return ids


async def until(condition: Any, seconds: float, what: str) -> None:
    """Poll a condition (sync or async) every 20 ms until it holds, failing after seconds."""
    deadline = time.monotonic() + seconds
    while True:
        result = condition()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {seconds} s waiting for {what}")
        await asyncio.sleep(0.02)


async def all_ended(session: aiohttp.ClientSession, server: Server) -> bool:
    try:
        async with session.get(server.base + "/api/jobs?status=pending,in_progress&limit=1",
                               headers=server.auth()) as response:
            return response.status == 200 and (await response.json())["total"] == 0
    except (aiohttp.ClientError, TimeoutError):
        return False


def ledger_runs(ledger: Path) -> Counter[str]:
    return Counter(ledger.read_text().split()) if ledger.exists() else Counter()


def job_table(data: Path) -> dict[str, tuple[str, int]]:
    with contextlib.closing(sqlite3.connect(data / "edge.db")) as conn:
        return {row[0]: (row[1], row[2])
                for row in conn.execute("SELECT id, status, attempts FROM jobs")}


@dataclass
class Result:
    name: str
    jobs: int
    sockets: int
    refused: int = 0
    refused_sockets: int = 0
    failed: int = 0
    failed_reasons: Counter[str] = field(default_factory=Counter)
    lost: int = 0
    twice: int = 0
    attempts_over_one: int = 0
    ready_s: float = 0.0
    stop_s: float | None = None
    reconnected: int = 0
    closes: Counter[int | None] = field(default_factory=Counter)
    restarting_events: int = 0
    upload: str = ""
    started_at_stop: int = 0
    health_ok: int = 0
    longest_gap: float = 0.0
    same_pid: bool | None = None

    def goals(self) -> list[tuple[str, bool]]:
        lost = [("0 jobs lost", self.lost == 0)]
        if self.name != "restart":
            return lost
        return [("0 refused", self.refused + self.refused_sockets == 0),
                ("0 failed", self.failed == 0), *lost,
                (f"/ready < {GOAL_READY_S:g} s", self.ready_s < GOAL_READY_S)]


async def stop_and_start(session: aiohttp.ClientSession, server: Server, name: str,
                         result: Result) -> float:
    """The restart, or the stop then a start; returns the moment it was asked for."""
    began = time.monotonic()
    if name == "restart":
        async with session.post(server.base + "/admin/restart",
                                headers=server.auth()) as response:
            body = await response.text()
            if response.status != 202:
                raise RuntimeError(f"POST /admin/restart: {response.status} {body}")
        return began
    how = signal.SIGTERM if name == "sigterm" else signal.SIGKILL
    result.stop_s = await asyncio.to_thread(server.end, how)
    server.start()
    return began


async def under_load(server: Server, name: str, args: argparse.Namespace,
                     ledger: Path, result: Result) -> None:
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(timeout=timeout) as session, \
            aiohttp.ClientSession(timeout=timeout) as own:
        health = Health(server.base)
        dashboards = Dashboards(server.base.replace("http", "ws") + "/api/v1/ws/dashboard",
                                server.auth())
        # A browser opens each socket on a fresh connection; --ws-over-keepalive lets them
        # reuse the idle keep-alive connections the job submissions left, as aiohttp may.
        ws_session = session if args.ws_over_keepalive else own
        tasks = [asyncio.create_task(dashboards.run(ws_session, i))
                 for i in range(args.sockets)]
        tasks.append(asyncio.create_task(health.run()))
        try:
            await until(lambda: len(dashboards.acks) == args.sockets, 30, "the sockets")
            acknowledged = await submit(session, server, args.jobs, ledger, args.job_ms)
            await until(lambda: len(ledger_runs(ledger)) >= 20, 30, "jobs to run")
            upload = Upload(server.port, server.key, args.upload_mb, args.upload_seconds)
            sending = asyncio.create_task(upload.run())
            await asyncio.wait_for(upload.halfway.wait(), 30)
            result.started_at_stop = len(ledger_runs(ledger))
            pid = server.proc.pid if server.proc else None
            began = await stop_and_start(session, server, name, result)
            result.ready_s = await ready_since(server, began)
            if name == "restart":
                result.same_pid = server.proc is not None and server.proc.pid == pid
            await asyncio.wait_for(sending, 60)
            with contextlib.suppress(RuntimeError):  # reported, not required
                await until(lambda: dashboards.reconnected() == args.sockets, 15, "sockets")
            await until(lambda: all_ended(session, server), 120, "every job to end")
            result.upload = await upload_story(session, server, upload, began)
        finally:
            health.running = False
            for task in tasks[:-1]:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
    result.refused, result.failed, result.failed_reasons = (health.refused, health.failed,
                                                            health.reasons)
    result.health_ok, result.longest_gap = health.ok, health.longest_gap
    result.refused_sockets = dashboards.refused
    result.failed_reasons.update(f"socket {e}" for e in dashboards.errors.elements())
    result.reconnected, result.closes = dashboards.reconnected(), dashboards.closes
    result.restarting_events = dashboards.restarting
    account(result, acknowledged, job_table(server.data), ledger_runs(ledger))


async def upload_story(session: aiohttp.ClientSession, server: Server, upload: Upload,
                       began: float) -> str:
    """The upload's answer, when its last byte went relative to the stop, its job's end."""
    told = upload.answer
    if upload.last_byte_at:
        told += f", last byte {upload.last_byte_at - began:+.2f} s after the stop"
    if upload.job_id:
        async with session.get(f"{server.base}/api/jobs/{upload.job_id}",
                               headers=server.auth()) as response:
            told += f", its ingest job {(await response.json())['status']}"
    return told


def account(result: Result, acknowledged: set[str], table: dict[str, tuple[str, int]],
            runs: Counter[str]) -> None:
    result.lost = sum(1 for job in acknowledged if table.get(job, ("missing", 0))[0]
                      != "completed")
    result.twice = sum(1 for job in acknowledged if runs[job] > 1)
    result.attempts_over_one = sum(1 for job in acknowledged if table.get(job, ("", 0))[1] > 1)


async def scenario(name: str, args: argparse.Namespace, work: Path,
                   plugin: Path) -> Result:
    data, ledger = work / name / "data", work / name / "ledger"
    data.mkdir(parents=True)
    server = Server(data, plugin, server_settings(args.sockets))
    result = Result(name, args.jobs, args.sockets)
    began = time.monotonic()
    server.start()
    try:
        await ready_since(server, began)
        server.key = (data / "admin.key").read_text().strip()
        async with asyncio.timeout(args.deadline):
            await under_load(server, name, args, ledger, result)
    finally:
        if server.proc is not None and server.proc.poll() is None:
            server.end(signal.SIGTERM)
    if name == "restart" and server.ready_lines() != 2:
        raise RuntimeError(f"expected two ready lines (one exec) in {server.log}")
    return result


def line(r: Result, settings: str) -> str:
    closes = ", ".join(f"{code}x{n}" for code, n in sorted(r.closes.items(), key=str))
    reasons = ", ".join(f"{k} x{n}" for k, n in r.failed_reasons.most_common(4))
    stop = f" (the old process exited in {r.stop_s:.2f} s)" if r.stop_s is not None else ""
    pid = " same pid" if r.same_pid else ""
    goals = "; ".join(f"{g} {'met' if ok else 'NOT met'}" for g, ok in r.goals())
    return (
        f"{SCENARIOS[r.name]}: refused {r.refused} /health + {r.refused_sockets} socket "
        f"connects; failed requests {r.failed}{f' ({reasons})' if reasons else ''}; "
        f"jobs lost {r.lost} of {r.jobs:,} ({r.started_at_stop} had started at the stop); "
        f"run twice {r.twice} (attempts > 1 in the database: {r.attempts_over_one}); "
        f"/ready again {r.ready_s:.2f} s after the {'request' if r.name == 'restart' else 'signal'}"
        f"{stop}{pid}; sockets reconnected {r.reconnected}/{r.sockets} (closes {closes or 'none'}"
        f", restarting events {r.restarting_events}); upload: {r.upload}; "
        f"/health {r.health_ok:,} answered, longest gap {r.longest_gap:.2f} s | "
        f"goals: {goals} | settings: {settings}"
    )


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--sockets", type=int, default=50)
    parser.add_argument("--job-ms", default="30,120", help="least,most ms per job")
    parser.add_argument("--upload-mb", type=float, default=4.0)
    parser.add_argument("--upload-seconds", type=float, default=1.5)
    parser.add_argument("--scenarios", default=",".join(SCENARIOS))
    parser.add_argument("--deadline", type=float, default=150.0,
                        help="most seconds a scenario may take after the first /ready")
    parser.add_argument("--ws-over-keepalive", action="store_true",
                        help="socket reconnects may reuse the submissions' idle connections")
    parser.add_argument("--keep", action="store_true", help="keep data dirs and logs")
    args = parser.parse_args()
    low, high = (int(v) for v in args.job_ms.split(","))
    args.job_ms = (low, high)
    args.scenarios = [s for s in args.scenarios.split(",") if s]
    unknown = set(args.scenarios) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenarios: {', '.join(sorted(unknown))}")
    return args


async def main(args: argparse.Namespace) -> int:
    settings = server_settings(args.sockets)
    told = (f"{serverconfig.describe(settings)}; PYTHONPATH names the bench's plugin "
            f"(kind `pause`, {args.job_ms[0]}-{args.job_ms[1]} ms per job)")
    short = (f"TOOMBOS_WS_MAX_PER_IP={settings['TOOMBOS_WS_MAX_PER_IP']}, "
             "plugin on PYTHONPATH, all else default")
    print(f"commit {serverconfig.commit()}; {told}")
    print(f"load: {args.jobs:,} jobs, {args.sockets} dashboard sockets, /health without "
          f"pause, {args.upload_mb:g} MB upload over {args.upload_seconds:g} s "
          f"(stop at {2 / 3:.0%} of it); all to 127.0.0.1", flush=True)
    results, failures = [], 0
    tmp = Path(tempfile.mkdtemp(prefix="bench-restart-"))
    if args.keep:
        print(f"data dirs, ledgers and server logs kept in {tmp}")
    try:
        plugin = make_plugin(tmp / "plugin")
        for name in args.scenarios:
            began = time.monotonic()
            try:
                results.append(await scenario(name, args, tmp, plugin))
            except (RuntimeError, TimeoutError, OSError, aiohttp.ClientError) as exc:
                failures += 1
                print(f"{SCENARIOS[name]}: FAILED: {exc!r}", flush=True)
            else:
                print(f"{SCENARIOS[name]}: scenario took {time.monotonic() - began:.1f} s",
                      flush=True)
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    print("\nsummary, one line per scenario:")
    for result in results:
        print(line(result, short))
    return 1 if failures else 0


if __name__ == "__main__":
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > 1:
        os.sched_setaffinity(0, {CLIENT_CPU})
    sys.exit(uvloop.run(main(parse())))
