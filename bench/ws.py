"""WebSocket broadcast: toombos-edge's dashboards beside bare aiohttp, same sockets, same bytes.

For each N (1,000, 5,000, 9,000 sockets), each server runs as a subprocess pinned to CPU 0.
The client side is on CPU 1: ``--clients`` processes holding the N sockets between them and
reading frame headers only, payloads skipped unread (bench/ws_client.c, one epoll loop,
built here with the system's C compiler; bench/ws_client.py on uvloop with ``--client
python`` or without a compiler), and this process, which triggers broadcasts over HTTP (4
requests in flight during a burst, so the server never waits for the next trigger).

- toombos-edge, in its default configuration (access log on, info logs, 30 s heartbeat,
  stats_update every 5 s), except ``--ws-max-per-ip N``: the default of 10 sockets per IP
  would refuse the rest of the N from 127.0.0.1. ``POST /admin/broadcast`` (admin key)
  publishes an announcement on the bus; the hub sends it to every ``/api/v1/ws/dashboard``.
- bare aiohttp (bench/peers/bare_ws.py, aiohttp's defaults, access log on): ``POST
  /broadcast`` takes the same body, answers the same way, and ``send_str``s the same
  envelope to every socket in a loop.

Measured per N and server, in this order:

- **CPU per delivered message**, the lead figure: the server process's user + system time
  (from /proc/PID/stat) over a burst of broadcasts fired back to back, divided by the
  messages delivered (N x broadcasts). It does not depend on how fast the client is as long
  as the client keeps up (one that fell behind would let the server's writes pile up and go
  out in fewer, larger system calls): "cli us/m" and "clibusy" show that it does.
- messages/s: N x broadcasts over the time from the first trigger to the last socket's
  receipt of the last broadcast; with it, how busy the server and the client side were
  (CPU seconds over wall seconds, each side has one CPU). A client side near 100% would mean
  the rate measures the client: the bench prints a warning then.
- p50/p99 latency from trigger to the last socket's receipt, over single broadcasts with
  the system idle between them; server RSS per socket (after connecting, minus before).
- then, on the same sockets, the real job path ("edge jobs", no peer): ``POST /api/jobs``
  of a no-op kind (a throwaway plugin, as bench/jobs.py loads it); the engine commits and
  publishes job_created, job_update and job_completed, each to every socket. Latency is
  submit to the last socket's job_completed; the rate counts every frame delivered.

Usage: python -m bench.ws [--sizes 1000,5000,9000] [--rounds 2] [--messages 200000]
                          [--singles 0 (30 at N <= 1,000, else 20)] [--clients 1]
                          [--client c|python] [--skip-jobs]
Goals (issue 4): rate >= 0.8 x bare (read as CPU: <= 1.25 x bare's CPU per message),
p99 <= 1.25 x bare at every N, under 20 KB per socket.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import orjson
import uvloop

from bench.common import PY, ROOT, free_port, pinned, rss_mb, start, stop, wait_url
from bench.jobs import make_plugin
from toombos_edge.ids import iso, new_id, now_ms
from toombos_edge.records.job import Job, JobStatus

SERVER_CPU, CLIENT_CPU = 0, 1
CLIENT = ROOT / "bench" / "ws_client"  # .c (the default, built by this bench) or .py
IN_FLIGHT = 4  # trigger requests in flight during a burst
SETTLE_SECONDS = 1.0
WAIT = 60.0
CLIENT_LIMIT = 0.9  # warn when the client side nears saturation, or the server's CPU per message
GOAL_CPU, GOAL_RATE, GOAL_P99, GOAL_KB = 1.25, 0.8, 1.25, 20.0


def client_command(kind: str, folder: Path) -> tuple[list[str], str]:
    """How to start a client process, and what to call it in the output: the C client,
    built here with the system's C compiler, unless there is none or ``--client python``."""
    compiler = shutil.which("cc") or shutil.which("gcc")
    if kind == "c" and compiler:
        binary = folder / "ws_client"
        subprocess.run([compiler, "-O2", "-o", str(binary), str(CLIENT.with_suffix(".c"))],
                       check=True)
        return [str(binary)], "C (epoll, frame headers only)"
    note = "" if kind == "python" else ", no C compiler found"
    return [PY, str(CLIENT.with_suffix(".py"))], f"Python (uvloop, frame headers only{note})"


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


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) a process has used: steadier than wall time on a busy box."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Clients:
    """The client processes: when all of them report the K-th message on every socket."""

    def __init__(self, command: list[str], count: int) -> None:
        self.command, self.count = command, count
        self.procs: list[asyncio.subprocess.Process] = []
        self.reports: dict[tuple[bytes, int], list[float]] = {}
        self.waiters: dict[tuple[bytes, int], asyncio.Future[float]] = {}
        self.answers: asyncio.Queue[int] = asyncio.Queue()
        self.ready: asyncio.Queue[bool] = asyncio.Queue()
        self.readers: list[asyncio.Task[None]] = []

    async def open(self, port: int, path: str, n: int) -> None:
        shares = [n // self.count + (i < n % self.count) for i in range(self.count)]
        for share in shares:
            proc = await asyncio.create_subprocess_exec(
                *pinned([*self.command, str(port), path, str(share)], CLIENT_CPU),
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
            self.procs.append(proc)
            self.readers.append(asyncio.create_task(self._read(proc)))
        for _ in shares:
            if not await asyncio.wait_for(self.ready.get(), WAIT):
                raise RuntimeError("a client process ended before its sockets were open")

    async def _read(self, proc: asyncio.subprocess.Process) -> None:
        assert proc.stdout is not None
        while line := await proc.stdout.readline():
            tag, *rest = line.split()
            if tag == b"ready":
                self.ready.put_nowait(True)
            elif tag == b"f":
                self.answers.put_nowait(int(rest[0]))
            else:
                key = (tag, int(rest[0]))
                times = self.reports.setdefault(key, [])
                times.append(float(rest[1]))
                if len(times) == self.count:
                    self._waiter(key).set_result(max(times))
        self.ready.put_nowait(False)
        for waiter in self.waiters.values():
            if not waiter.done():
                waiter.set_exception(RuntimeError(f"a client process ended ({proc.returncode})"))

    def _waiter(self, key: tuple[bytes, int]) -> asyncio.Future[float]:
        if key not in self.waiters:
            self.waiters[key] = asyncio.get_running_loop().create_future()
        return self.waiters[key]

    async def all_have(self, tag: bytes, k: int) -> float:
        """``time.monotonic()`` when every socket had its K-th message of this kind."""
        return await asyncio.wait_for(asyncio.shield(self._waiter((tag, k))), WAIT)

    async def frames(self) -> int:
        """Text frames received so far, over every socket."""
        for proc in self.procs:
            assert proc.stdin is not None
            proc.stdin.write(b"f\n")
        return sum([await asyncio.wait_for(self.answers.get(), WAIT) for _ in self.procs])

    def cpu(self) -> float:
        return sum(cpu_seconds(proc.pid) for proc in self.procs) + time.process_time()

    async def close(self) -> None:
        for proc in self.procs:
            if proc.stdin is not None:
                proc.stdin.close()
        for proc in self.procs:
            try:
                await asyncio.wait_for(proc.wait(), 10)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        for reader in self.readers:
            reader.cancel()


@dataclass
class Result:
    name: str
    n: int
    latencies_ms: list[float] = field(default_factory=list)
    rate: float = 0.0
    cpu_us: float = 0.0  #: server CPU (user + system) per delivered message, in the burst
    server_busy: float = 0.0  #: server CPU seconds / wall seconds, in the burst
    client_busy: float = 0.0  #: client processes' and trigger's CPU / wall, in the burst
    client_us: float = 0.0  #: the client side's CPU per delivered message, in the burst
    kb_per_socket: float = 0.0
    job_latencies_ms: list[float] = field(default_factory=list)
    job_rate: float = 0.0

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
    headers: dict[str, str] = field(default_factory=dict)


async def post(http: aiohttp.ClientSession, url: str, body: bytes) -> None:
    """One trigger; the answer must be the server's: 202 ``{"published": "announcement"…}``."""
    async with http.post(url, data=body) as response:
        answer = await response.read()
        if response.status != 202 or orjson.loads(answer).get("published") != "announcement":
            raise RuntimeError(f"{url}: {response.status} {answer[:200]!r}")


async def fire(count: int, send: Callable[[], Awaitable[None]]) -> None:
    """``count`` calls of ``send()``, IN_FLIGHT at a time."""
    left = iter(range(count))

    async def lane() -> None:
        for _ in left:
            await send()

    await asyncio.gather(*(lane() for _ in range(IN_FLIGHT)))


async def measure(target: Target, n: int, args: argparse.Namespace, pid: int,
                  body: bytes) -> Result:
    result = Result(target.name, n)
    singles = args.singles or (30 if n <= 1000 else 20)
    burst = max(10, args.messages // n)
    clients = Clients(args.client_command, args.clients)
    before = rss_mb(pid)
    try:
        await clients.open(target.port, target.ws_path, n)
        await asyncio.sleep(SETTLE_SECONDS)
        result.kb_per_socket = (rss_mb(pid) - before) * 1024 / n
        url = f"http://127.0.0.1:{target.port}{target.trigger_path}"
        connector = aiohttp.TCPConnector(limit=IN_FLIGHT)
        async with aiohttp.ClientSession(headers=target.headers, connector=connector) as http:
            for k in range(1, singles + 1):
                began = time.monotonic()
                await post(http, url, body)
                result.latencies_ms.append((await clients.all_have(b"a", k) - began) * 1000)
            began, server, client = time.monotonic(), cpu_seconds(pid), clients.cpu()
            await fire(burst, lambda: post(http, url, body))
            ended = await clients.all_have(b"a", singles + burst)
            server, client = cpu_seconds(pid) - server, clients.cpu() - client
            wall = time.monotonic() - began
            result.rate = n * burst / (ended - began)
            result.cpu_us = server * 1e6 / (n * burst)
            result.server_busy, result.client_busy = server / wall, client / wall
            result.client_us = client * 1e6 / (n * burst)
            if not args.skip_jobs and target.name == "toombos-edge":
                await job_path(http, target, clients, singles, burst, result)
    finally:
        await clients.close()
    return result


async def job_path(http: aiohttp.ClientSession, target: Target, clients: Clients,
                   singles: int, burst: int, result: Result) -> None:
    """Submit no-op jobs; each brings job_created, job_update, job_completed to every socket."""
    url = f"http://127.0.0.1:{target.port}/api/jobs"

    async def submit() -> None:
        async with http.post(url, json={"kind": "noop"}) as response:
            if response.status != 202:
                raise RuntimeError(f"{url}: {response.status} {await response.text()}")

    for k in range(1, singles + 1):
        began = time.monotonic()
        await submit()
        result.job_latencies_ms.append((await clients.all_have(b"j", k) - began) * 1000)
    frames_before = await clients.frames()
    began = time.monotonic()
    await fire(burst, submit)
    ended = await clients.all_have(b"j", singles + burst)
    result.job_rate = (await clients.frames() - frames_before) / (ended - began)


def targets(data_dir: Path, n: int) -> list[Target]:
    port, bare_port = free_port(), free_port()
    edge = Target(
        "toombos-edge", [PY, "-m", "toombos_edge", "serve", "--port", str(port), "--data-dir",
                         str(data_dir), "--ws-max-per-ip", str(n)],
        port, "/api/v1/ws/dashboard?token=ADMIN", "/admin/broadcast")
    bare = Target("bare aiohttp", [PY, str(ROOT / "bench" / "peers" / "bare_ws.py"),
                                   str(bare_port)],
                  bare_port, "/ws", "/broadcast")
    return [bare, edge]


async def run_one(target: Target, n: int, data_dir: Path, args: argparse.Namespace,
                  body: bytes) -> Result:
    log = data_dir.parent / f"{target.name.split()[0]}.log"  # the logs go to a real file
    proc = start(target.command, cpu=SERVER_CPU, log=log)
    try:
        wait_url(f"http://127.0.0.1:{target.port}/ready", proc)
        if target.name == "toombos-edge":
            key = (data_dir / "admin.key").read_text().strip()
            target.ws_path = target.ws_path.replace("ADMIN", key)
            target.headers = {"Authorization": f"Bearer {key}"}
        return await measure(target, n, args, proc.pid, body)
    finally:
        stop(proc)


def report(bare: Result, edge: Result, round_no: int) -> None:
    for r in (bare, edge):
        print(f"{round_no:>5} {r.n:>6} {r.name:<13} {r.cpu_us:>8.2f} {r.rate:>11,.0f} "
              f"{r.p(0.5):>8.2f} {r.p(0.99):>8.2f} {r.kb_per_socket:>8.1f} "
              f"{r.server_busy:>7.0%} {r.client_us:>8.2f} {r.client_busy:>7.0%}")
    print(f"{'':>5} {'':>6} {'ratio':<13} {edge.cpu_us / bare.cpu_us:>8.2f} "
          f"{edge.rate / bare.rate:>11.2f} {edge.p(0.5) / bare.p(0.5):>8.2f} "
          f"{edge.p(0.99) / bare.p(0.99):>8.2f} {edge.kb_per_socket / bare.kb_per_socket:>8.2f}")
    if edge.job_latencies_ms:
        print(f"{round_no:>5} {edge.n:>6} {'edge jobs':<13} {'':>8} {edge.job_rate:>11,.0f} "
              f"{edge.p(0.5, jobs=True):>8.2f} {edge.p(0.99, jobs=True):>8.2f}")
    for r in (bare, edge):
        if r.client_busy > CLIENT_LIMIT:
            print(f"      warning: the client side was {r.client_busy:.0%} busy during "
                  f"{r.name}'s burst: its messages/s may measure the client")
        elif r.client_us > CLIENT_LIMIT * r.cpu_us:
            print(f"      warning: the client side spent {r.client_us / r.cpu_us:.0%} of "
                  f"{r.name}'s CPU per message: on one CPU each, it may not outrun it")


def spread(values: list[float]) -> str:
    ordered = sorted(values)
    return f"{statistics.median(ordered):.2f} [{ordered[0]:.2f}-{ordered[-1]:.2f}]"


def verdict(value: float, goal: float, at_most: bool) -> str:
    return "met" if (value <= goal if at_most else value >= goal) else "NOT met"


def summary(n: int, pairs: list[tuple[Result, Result]], args: argparse.Namespace) -> None:
    """One line for this N: ours, bare, the ratios (median [min-max] of rounds), the goals."""
    bare, edge = [b for b, _ in pairs], [e for _, e in pairs]

    def med(results: list[Result], value: str) -> float:
        return float(statistics.median(getattr(r, value) for r in results))

    cpu = [e.cpu_us / b.cpu_us for b, e in pairs]
    rate = [e.rate / b.rate for b, e in pairs]
    p99 = [e.p(0.99) / b.p(0.99) for b, e in pairs]
    kb = med(edge, "kb_per_socket")
    busy = max(r.client_busy for r in bare + edge)
    client = sorted(r.client_us for r in bare + edge)
    print(f"N={n:,}: CPU us/msg ours {med(edge, 'cpu_us'):.2f} bare {med(bare, 'cpu_us'):.2f} "
          f"ratio {spread(cpu)} (goal <= {GOAL_CPU}: "
          f"{verdict(statistics.median(cpu), GOAL_CPU, True)}); "
          f"msgs/s ours {med(edge, 'rate'):,.0f} bare {med(bare, 'rate'):,.0f} "
          f"ratio {spread(rate)} (goal >= {GOAL_RATE}: "
          f"{verdict(statistics.median(rate), GOAL_RATE, False)}); "
          f"p99 ms ours {statistics.median(e.p(0.99) for e in edge):.1f} "
          f"bare {statistics.median(b.p(0.99) for b in bare):.1f} ratio {spread(p99)} "
          f"(goal <= {GOAL_P99}: {verdict(statistics.median(p99), GOAL_P99, True)}); "
          f"KB/socket ours {kb:.1f} bare {med(bare, 'kb_per_socket'):.1f} "
          f"(goal < {GOAL_KB:.0f}: {verdict(kb, GOAL_KB - 1e-9, True)}); "
          f"client side {client[0]:.2f}-{client[-1]:.2f} us/msg, at most {busy:.0%} busy; "
          f"settings: {len(pairs)} round(s), "
          f"{max(10, args.messages // n)} broadcasts/burst, default config + "
          f"ws_max_per_ip={n}, server on CPU {SERVER_CPU}, client processes ({args.client}): "
          f"{args.clients} + trigger on CPU {CLIENT_CPU}")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="1000,5000,9000", help="socket counts")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--messages", type=int, default=200_000,
                        help="messages per burst: N x broadcasts (at least 10 broadcasts)")
    parser.add_argument("--singles", type=int, default=0,
                        help="single broadcasts for latency (0: 30 at N <= 1,000, else 20)")
    parser.add_argument("--clients", type=int, default=1,
                        help="client processes holding the sockets (all on CPU 1)")
    parser.add_argument("--client", choices=("c", "python"), default="c",
                        help="the client processes' language (c needs a C compiler)")
    parser.add_argument("--skip-jobs", action="store_true", help="no edge jobs row")
    args = parser.parse_args()
    sizes = [int(x) for x in args.sizes.split(",")]
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # servers and clients inherit it
    if hard < max(sizes) + 100:
        raise SystemExit(f"the open-files limit ({hard}) is under {max(sizes) + 100}")
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > 1:
        os.sched_setaffinity(0, {CLIENT_CPU})
    scratch = Path(tempfile.mkdtemp(prefix="ws-bench-"))
    try:
        os.environ["PYTHONPATH"] = str(make_plugin(scratch / "plugin"))  # for edge jobs
        args.client_command, client_name = client_command(args.client, scratch)
        await run(args, sizes, client_name)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


async def run(args: argparse.Namespace, sizes: list[int], client_name: str) -> None:
    payload = job_payload()
    body = orjson.dumps({"data": payload})
    print("\n".join((
        f"event: {len(orjson.dumps(payload))} bytes of job JSON in the announcement envelope.",
        "toombos-edge runs its DEFAULT configuration (access log on, info logs, 30 s "
        "heartbeat, stats_update every 5 s)",
        "but for --ws-max-per-ip N (default 10 sockets per IP: the one deviation, so that "
        "127.0.0.1 can open N);",
        "bare aiohttp runs aiohttp's defaults (no per-IP limit, no heartbeat), access log on.",
        f"Servers on CPU {SERVER_CPU}; {args.clients} client process(es) in {client_name} and "
        f"the trigger on CPU {CLIENT_CPU}.",
        "us/msg: server CPU (user + system) over the burst / messages delivered; cli us/m: "
        "the same for the client side",
        "(client processes and trigger); busy: CPU s / wall s over the burst; p50/p99: ms "
        "from trigger to the last socket's receipt.",
    )))
    print(f"{'round':>5} {'N':>6} {'server':<13} {'us/msg':>8} {'messages/s':>11} "
          f"{'p50 ms':>8} {'p99 ms':>8} {'KB/sock':>8} {'srvbusy':>7} {'cli us/m':>8} "
          f"{'clibusy':>7}")
    pairs: dict[int, list[tuple[Result, Result]]] = {n: [] for n in sizes}
    for round_no in range(1, args.rounds + 1):
        for n in sizes:
            with tempfile.TemporaryDirectory() as tmp:
                data_dir = Path(tmp) / "data"
                pair = targets(data_dir, n)
                if round_no % 2 == 0:
                    pair.reverse()
                results = {t.name: await run_one(t, n, data_dir, args, body) for t in pair}
            report(results["bare aiohttp"], results["toombos-edge"], round_no)
            pairs[n].append((results["bare aiohttp"], results["toombos-edge"]))
    print("summary per N (ours = toombos-edge; ratio = ours / bare, median [min-max] of "
          "rounds; goals of issue 4, the rate goal read as CPU: 1 / 0.8 = 1.25):")
    for n in sizes:
        summary(n, pairs[n], args)


if __name__ == "__main__":
    uvloop.run(main())
