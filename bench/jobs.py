"""Durable job throughput and list latency, beside Huey (SqliteHuey) measured in the same run.

    .venv/bin/python bench/jobs.py [--jobs 20000] [--workers 8] [--rounds 3] [--rows 1000000]

(a) in-process: N no-op jobs submitted from 256 concurrent tasks to a JobEngine on a fresh
    SQLite file, until every completion is committed; the process pinned to one CPU.
    Peer: SqliteHuey, same no-op task, same number of worker threads, same CPU: N enqueues
    from that many threads, then N dequeue+execute (Huey keeps no completion record).
(b) over HTTP: the real server (`toombos_edge serve`, pinned to one CPU) takes POST /api/jobs
    from wrk in another process (64 keep-alive connections, other CPU) for a few seconds;
    the rate is jobs completed (committed) per second from the first request to the last
    completion.
(c) list latency: a data dir filled with --rows jobs, then GET /api/jobs?limit=100 under each
    filter, sequentially on one keep-alive connection; p50/p99 per filter.

The no-op kind comes from a throwaway plugin (a .dist-info with a ``toombos_edge.handlers``
entry point) on the server's PYTHONPATH. Every figure is per round; the machine is shared.
"""

from __future__ import annotations

import sys

# bench/http.py is named like the standard library's http package, and this folder comes
# first on sys.path: take the folder off while the standard library loads.
_BENCH = sys.path.pop(0)
import argparse
import asyncio
import http.client
import json
import os
import random
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

sys.path.insert(0, _BENCH)
ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
CPU_SERVER, CPU_LOAD = 0, 1
PLUGIN = (
    "from toombos_edge.jobs.kinds import JobKind\n"
    "async def noop(ctx):\n    return None\n"
    "def kinds():\n    return [JobKind('noop', noop)]\n"
)
WRK_SCRIPT = """
wrk.method = "POST"
wrk.body = '{"kind": "noop"}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer %s"
"""


# -- helpers -------------------------------------------------------------------------------

def pinned(command: list[str], cpu: int) -> list[str]:
    return ["taskset", "-c", str(cpu), *command] if shutil.which("taskset") else command


def child(mode: str, *args: str) -> dict[str, Any]:
    """Run one measurement in a fresh process pinned to one CPU; it prints one JSON line."""
    out = subprocess.run(
        pinned([PY, __file__, mode, *args], CPU_SERVER),
        check=True, capture_output=True, text=True, cwd=ROOT, timeout=600,
    )
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def make_plugin(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "bench_noop.py").write_text(PLUGIN)
    info = folder / "bench_noop-1.0.dist-info"
    info.mkdir(exist_ok=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: bench-noop\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[toombos_edge.handlers]\nnoop = bench_noop:kinds\n")
    return folder


class Server:
    def __init__(self, data_dir: Path, plugin: Path, workers: int) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("TOOMBOS_")}
        env.update(PYTHONPATH=str(plugin), TOOMBOS_JOB_WORKERS=str(workers),
                   TOOMBOS_ACCESS_LOG="false", TOOMBOS_LOG_LEVEL="warning")
        command = [PY, "-m", "toombos_edge", "serve", "--port", str(self.port),
                   "--data-dir", str(data_dir)]
        self.proc = subprocess.Popen(pinned(command, CPU_SERVER), env=env, cwd=ROOT,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.key = ""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("server exited")
            try:
                with urllib.request.urlopen(self.base + "/ready", timeout=1) as response:
                    if response.status == 200:
                        break
            except OSError:
                time.sleep(0.02)
        self.key = (data_dir / "admin.key").read_text().strip()

    def get(self, path: str) -> dict[str, Any]:
        request = urllib.request.Request(self.base + path,
                                         headers={"Authorization": f"Bearer {self.key}"})
        with urllib.request.urlopen(request, timeout=30) as response:
            body: dict[str, Any] = json.loads(response.read())
            return body

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def spread(values: list[float]) -> str:
    ordered = sorted(values)
    return f"{statistics.median(ordered):,.0f} [{ordered[0]:,.0f}-{ordered[-1]:,.0f}]"


# -- (a) in-process ------------------------------------------------------------------------

async def _engine_run(jobs: int, workers: int, with_metrics: bool = False) -> dict[str, Any]:
    sys.path.insert(0, str(ROOT))
    from toombos_edge.events import EventBus
    from toombos_edge.jobs.engine import JobEngine
    from toombos_edge.jobs.kinds import JobContext, JobKind, KindRegistry
    from toombos_edge.store import Database

    async def noop(ctx: JobContext) -> None:
        return None

    folder = Path(tempfile.mkdtemp(prefix="bench-jobs-"))
    db = Database(folder / "edge.db")
    await db.open()
    registry = KindRegistry()
    registry.register(JobKind("noop", noop))
    bus = EventBus()
    bus.subscribe(lambda event: None)  # a subscriber, as the hub and activity log are
    engine = JobEngine(db, bus, registry, workers=workers)
    if with_metrics:  # what metrics_ctx (app.py) wires to the engine, the bus and the writer
        from toombos_edge.metrics import Metrics

        metrics = Metrics()
        bus.subscribe(metrics.jobs.on_event)
        db.on_commit = metrics.commits.observe
        metrics.watch_engine(engine)
    await engine.start()
    producers = 256

    async def produce(count: int) -> None:
        for _ in range(count):
            await engine.submit("noop")

    began, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(produce(jobs // producers) for _ in range(producers)))
    submitted = time.perf_counter() - began
    await engine.join()
    elapsed, cpu = time.perf_counter() - began, time.process_time() - cpu
    done = await db.read(lambda c: c.execute(
        "SELECT count(*) FROM jobs WHERE status = 'completed'").fetchone()[0])
    await engine.stop(5)
    await db.close()
    shutil.rmtree(folder)
    total = jobs // producers * producers
    assert done == total, (done, total)
    return {"jobs_per_s": total / elapsed, "submits_per_s": total / submitted,
            "cpu_us_per_job": cpu / total * 1e6}


def inproc(jobs: int, workers: int, with_metrics: bool) -> None:
    import uvloop

    uvloop.install()
    print(json.dumps(asyncio.run(_engine_run(jobs, workers, with_metrics))))


def huey_run(jobs: int, workers: int) -> None:
    from huey import SqliteHuey

    folder = Path(tempfile.mkdtemp(prefix="bench-huey-"))
    huey = SqliteHuey(filename=str(folder / "huey.db"), results=False)

    @huey.task()
    def noop() -> None:
        return None

    def threads(target: Any, count: int) -> float:
        began = time.perf_counter()
        pool = [threading.Thread(target=target, args=(count,)) for _ in range(workers)]
        for thread in pool:
            thread.start()
        for thread in pool:
            thread.join()
        return time.perf_counter() - began

    def enqueue(count: int) -> None:
        for _ in range(count // workers):
            noop()

    def consume(_count: int) -> None:
        while (task := huey.dequeue()) is not None:
            huey.execute(task)

    total = jobs // workers * workers
    cpu = time.process_time()
    t_enqueue = threads(enqueue, jobs)
    t_dequeue = threads(consume, jobs)
    cpu = time.process_time() - cpu
    shutil.rmtree(folder)
    print(json.dumps({
        "enqueues_per_s": total / t_enqueue,
        "dequeues_per_s": total / t_dequeue,
        "jobs_per_s": total / (t_enqueue + t_dequeue),
        "cpu_us_per_job": cpu / total * 1e6,
    }))


def ensure_wrk() -> None:
    if shutil.which("wrk") is None:
        subprocess.run(["apt-get", "install", "-y", "-q", "wrk"], check=True)


def ensure_huey() -> None:
    try:
        import huey  # noqa: F401
    except ImportError:
        subprocess.run([PY, "-m", "pip", "install", "-q", "huey"], check=True)


# -- (b) over HTTP ---------------------------------------------------------------------------

def over_http(workers: int, seconds: int, folder: Path) -> float:
    data = folder / f"http-{time.monotonic_ns()}"
    server = Server(data, make_plugin(folder / "plugin"), workers)
    script = folder / "post.lua"
    script.write_text(WRK_SCRIPT % server.key)
    try:
        began = time.perf_counter()
        subprocess.run(
            pinned(["wrk", "-t", "2", "-c", "64", "-d", f"{seconds}s", "-s", str(script),
                    server.base + "/api/jobs"], CPU_LOAD),
            check=True, capture_output=True, timeout=seconds + 60,
        )
        while server.get("/api/jobs?status=pending,in_progress&limit=1")["total"]:
            time.sleep(0.01)
        elapsed = time.perf_counter() - began
        completed = server.get("/api/jobs?status=completed&limit=1")["total"]
        return float(completed) / elapsed
    finally:
        server.stop()
        shutil.rmtree(data, ignore_errors=True)


# -- (c) list latency on a big table ---------------------------------------------------------

_B32 = "0123456789abcdefghjkmnpqrstvwxyz"


def _b32(value: int, length: int) -> str:
    return "".join(_B32[(value >> (5 * (length - 1 - i))) & 31] for i in range(length))


def fill(db_path: Path, rows: int) -> dict[str, str]:
    """``rows`` jobs over the last 30 days; returns sample values to filter on."""
    now = int(time.time() * 1000)
    rng = random.Random(7)
    statuses = ["completed"] * 80 + ["failed"] * 10 + ["cancelled"] * 5 + ["partial"] * 3 + [
        "pending"] * 2
    kinds = ["generate", "generate", "ingest", "publish"]
    year = 365 * 86_400_000
    conn = sqlite3.connect(db_path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = OFF")
    conn.execute("PRAGMA cache_size = -262144")
    sample: dict[str, str] = {}
    step = 30 * 86_400_000 // rows
    for start in range(0, rows, 50_000):
        batch = []
        for n in range(start, min(rows, start + 50_000)):
            created = now - 30 * 86_400_000 + n * step
            job_id = "job_" + _b32(created, 10) + _b32(rng.getrandbits(80), 16)
            status = rng.choice(statuses)
            doc = f"doc_{n // 4:08d}" if n % 2 else None
            due = created + year if status == "pending" else created  # never due here
            batch.append((job_id, rng.choice(kinds), status, doc, f"corr-{n:08d}", created,
                          created, due))
            if n == rows // 2:
                sample["id"] = job_id
        conn.execute("BEGIN")
        conn.executemany(
            "INSERT INTO jobs (id, kind, status, document_id, correlation_id, created_at, "
            "updated_at, due_at, max_attempts, params) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 3, "
            "'{\"document\": \"x\"}')", batch)
        conn.execute("COMMIT")
    conn.execute("INSERT INTO job_counts (kind, status, n) "  # the server's store keeps them
                 "SELECT kind, status, count(*) FROM jobs GROUP BY kind, status")
    conn.execute("ANALYZE")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # serve from the main file, as in life
    conn.close()
    day = time.strftime("%Y-%m-%d", time.gmtime((now - 10 * 86_400_000) / 1000))
    sample["day"] = day
    sample["doc"] = f"doc_{rows // 8:08d}"[:-1]  # a prefix matching ~40 documents' jobs
    return sample


def list_latency(rows: int, folder: Path, requests: int) -> dict[str, tuple[float, float]]:
    data = folder / "big"
    data.mkdir(parents=True, exist_ok=True)
    subprocess.run([PY, "-m", "toombos_edge", "migrate", "--data-dir", str(data)],
                   check=True, capture_output=True, cwd=ROOT,
                   env={k: v for k, v in os.environ.items() if not k.startswith("TOOMBOS_")})
    began = time.perf_counter()
    sample = fill(data / "edge.db", rows)
    print(f"  filled {rows:,} rows in {time.perf_counter() - began:.0f} s", flush=True)
    server = Server(data, make_plugin(folder / "plugin"), 4)
    try:
        cursor = server.get("/api/jobs?limit=100&offset=1000")["next_cursor"]
        queries = {
            "(none)": "",
            "status=failed": "status=failed",
            "status=pending": "status=pending",
            "status=completed,failed": "status=completed,failed",
            "kind=publish": "kind=publish",
            "q=<doc prefix>": f"q={sample['doc']}",
            "q=<job id>": f"q={sample['id']}",
            "from/to (one day)": f"from={sample['day']}&to={sample['day']}",
            "status=failed&kind=ingest": "status=failed&kind=ingest",
            "cursor (page 12)": f"cursor={cursor}",
            "offset=1000": "offset=1000",
        }
        return {name: _latency(server, query, requests) for name, query in queries.items()}
    finally:
        server.stop()


def _latency(server: Server, query: str, requests: int) -> tuple[float, float]:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    headers = {"Authorization": f"Bearer {server.key}"}
    path = "/api/jobs?limit=100" + ("&" + query if query else "")
    times = []
    for n in range(requests + 10):
        began = time.perf_counter()
        conn.request("GET", path, headers=headers)
        response = conn.getresponse()
        body = response.read()
        if n >= 10:  # the first few warm the page cache
            times.append((time.perf_counter() - began) * 1000)
        assert response.status == 200, body[:200]
    conn.close()
    times.sort()
    return statistics.median(times), times[int(len(times) * 0.99) - 1]


# -- main ------------------------------------------------------------------------------------

def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--http-seconds", type=int, default=5)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--skip", default="", help="comma list of: inproc,http,list")
    parser.add_argument("--metrics", action="store_true",
                        help="(a) also with metrics on, in the same rounds")
    args = parser.parse_args()
    skip = set(args.skip.split(","))
    ensure_huey()
    folder = Path(tempfile.mkdtemp(prefix="bench-jobs-"))
    try:
        if "inproc" not in skip:
            _report_inproc(args)
        if "http" not in skip:
            ensure_wrk()
            rates = [over_http(args.workers, args.http_seconds, folder)
                     for _ in range(args.rounds)]
            print(f"(b) over HTTP, 64 connections: {spread(rates)} jobs/s "
                  f"(goal >= 3,000)", flush=True)
        if "list" not in skip:
            print(f"(c) GET /api/jobs?limit=100 on {args.rows:,} jobs, "
                  f"{args.requests} requests each:", flush=True)
            for name, (p50, p99) in list_latency(args.rows, folder, args.requests).items():
                print(f"  {name:28s} p50 {p50:6.2f} ms  p99 {p99:6.2f} ms")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _report_inproc(args: argparse.Namespace) -> None:
    ours, peer, ratios = [], [], []
    for n in range(args.rounds):
        mine = child("--inproc", str(args.jobs), str(args.workers))
        theirs = child("--huey", str(args.jobs), str(args.workers))
        ours.append(mine["jobs_per_s"])
        peer.append(theirs["jobs_per_s"])
        ratios.append(mine["jobs_per_s"] / theirs["jobs_per_s"])
        print(f"  round {n + 1}: engine {mine['jobs_per_s']:,.0f} jobs/s "
              f"({mine['cpu_us_per_job']:.0f} us CPU/job); huey {theirs['jobs_per_s']:,.0f} "
              f"jobs/s ({theirs['cpu_us_per_job']:.0f} us CPU/job; enqueue "
              f"{theirs['enqueues_per_s']:,.0f}/s, dequeue+run "
              f"{theirs['dequeues_per_s']:,.0f}/s); ratio {ratios[-1]:.2f}", flush=True)
    print(f"(a) in-process, one CPU, {args.jobs:,} jobs, {args.workers} workers: engine "
          f"{spread(ours)} jobs/s, huey {spread(peer)} jobs/s, ratio "
          f"{statistics.median(ratios):.2f} (goal >= 10,000 and >= 3x)", flush=True)
    if args.metrics:
        _report_metrics_cost(args)


def _report_metrics_cost(args: argparse.Namespace) -> None:
    """In-process jobs/s without and with metrics, alternating in each round."""
    off, on = [], []
    for n in range(args.rounds):
        off.append(child("--inproc", str(args.jobs), str(args.workers))["jobs_per_s"])
        on.append(child("--inproc", str(args.jobs), str(args.workers), "metrics")["jobs_per_s"])
        print(f"  round {n + 1}: metrics off {off[-1]:,.0f} jobs/s, on {on[-1]:,.0f} jobs/s "
              f"({(on[-1] / off[-1] - 1) * 100:+.1f}%)", flush=True)
    change = (statistics.median(on) / statistics.median(off) - 1) * 100
    print(f"(a) with metrics: off {spread(off)} jobs/s, on {spread(on)} jobs/s, "
          f"{change:+.1f}% (goal: no worse than -5%)", flush=True)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--inproc":
        inproc(int(sys.argv[2]), int(sys.argv[3]), sys.argv[4:] == ["metrics"])
    elif len(sys.argv) > 1 and sys.argv[1] == "--huey":
        huey_run(int(sys.argv[2]), int(sys.argv[3]))
    else:
        main()
