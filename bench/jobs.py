"""Durable job throughput and list latency, beside Huey (SqliteHuey) measured in the same run.

    .venv/bin/python -m bench.jobs [--jobs 20000] [--workers 4,8,64] [--rounds 3]
                                   [--sync normal,full] [--rows 1000000] [--skip list]

Ours is the server in its default configuration: every setting at its default except the
data dir, the port, and the two the row measures, TOOMBOS_JOB_WORKERS and
TOOMBOS_DB_SYNCHRONOUS (in-process, the same Settings build the same Database and JobEngine
as the server's app does). The peer is Huey pinned at ``huey==3.5.4`` (HUEY_VERSION),
installed into this venv if another version (or none) is there.

Durability is measured at both SQLite settings, each row saying which:
NORMAL (WAL, no fsync per commit: a commit survives a crash of the process, not a power cut)
and FULL (WAL fsynced at each commit: it survives a power cut too). SqliteHuey has no
setting for NORMAL (its ``fsync`` gives FULL or OFF), so NORMAL is set on each of its
connections by a subclass of its storage; FULL is its own ``fsync=True``. Each child reads
``PRAGMA synchronous`` and ``PRAGMA journal_mode`` back from the connection that commits
(our writer, Huey's connection) and refuses to report a figure taken at another setting.

(a) in-process: N no-op jobs submitted from 256 concurrent tasks to a JobEngine on a fresh
    SQLite file, until every completion is committed; the process pinned to one CPU.
    Peer: SqliteHuey, same no-op task, same number of worker threads, same CPU: N enqueues
    from that many threads, then N dequeue+execute (Huey keeps no completion record).
(b) over HTTP: the real server (`toombos_edge serve`, pinned to one CPU, its log, access log
    included, written to a file) takes POST /api/jobs from wrk in another process (64
    keep-alive connections, other CPU) for a few seconds; the rate is jobs completed
    (committed) per second from the first request to the last completion. No peer: Huey has
    no HTTP front; the goal is absolute.
(c) list latency: a data dir filled with --rows jobs, then GET /api/jobs?limit=100 under each
    filter, sequentially on one keep-alive connection; p50/p99 per filter.

Each round runs every (workers, synchronous) pair, ours then Huey, the order of the two
settings alternating between rounds. The no-op kind comes from a throwaway plugin (a
.dist-info with a ``toombos_edge.handlers`` entry point) on the server's PYTHONPATH. Traffic
goes to 127.0.0.1 only. The machine may be shared: read the per-round ratios.
"""

from __future__ import annotations

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
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

from bench import serverconfig
from bench.common import UNTHROTTLED, write_plugin

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
CPU_SERVER, CPU_LOAD = 0, 1
HUEY_VERSION = "3.5.4"
SYNCS = ("normal", "full")
PRAGMA_SYNC = {0: "off", 1: "normal", 2: "full", 3: "extra"}
SURVIVES = {"normal": "a commit survives a process crash, not a power cut",
            "full": "a commit survives a power cut too"}
GOAL_INPROC, GOAL_RATIO, GOAL_HTTP, GOAL_LIST_P99_MS = 10_000, 3.0, 3_000, 20.0
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


def server_env(workers: int | None, sync: str | None) -> dict[str, str]:
    """The only TOOMBOS_* variables a measured server gets (None: left at its default)."""
    env = dict(UNTHROTTLED)
    if workers is not None:
        env["TOOMBOS_JOB_WORKERS"] = str(workers)
    if sync is not None:
        env["TOOMBOS_DB_SYNCHRONOUS"] = sync
    return env


def child(mode: str, *args: str) -> dict[str, Any]:
    """Run one measurement in a fresh process pinned to one CPU; it prints one JSON line."""
    out = subprocess.run(
        pinned([PY, "-m", "bench.jobs", mode, *args], CPU_SERVER),
        check=True, capture_output=True, text=True, cwd=ROOT, timeout=600,
    )
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def make_plugin(folder: Path) -> Path:
    return write_plugin(folder, "bench_noop", "noop", PLUGIN)


class Server:
    """``toombos_edge serve`` with only ``settings`` set; its log (access log too) to a file."""

    def __init__(self, data_dir: Path, plugin: Path, settings: dict[str, str],
                 cpu: int | None = CPU_SERVER, key: str | None = None) -> None:
        """``key``: the admin key, when another node on the same database made it (the
        first node writes it to its data dir)."""
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("TOOMBOS_")}
        env.update(PYTHONPATH=str(plugin), **settings)
        command = [PY, "-m", "toombos_edge", "serve", "--port", str(self.port),
                   "--data-dir", str(data_dir)]
        data_dir.mkdir(parents=True, exist_ok=True)
        self.log = data_dir.parent / f"{data_dir.name}.log"
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(command if cpu is None else pinned(command, cpu),
                                         env=env, cwd=ROOT,
                                         stdout=log, stderr=subprocess.STDOUT)
        self.key = ""
        deadline = time.monotonic() + 60
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited; its log: {self.log.read_text()[-2000:]}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("server not ready within 60 s")
            try:
                with urllib.request.urlopen(self.base + "/ready", timeout=1) as response:
                    if response.status == 200:
                        break
            except OSError:
                time.sleep(0.02)
        self.key = key or (data_dir / "admin.key").read_text().strip()

    def get(self, path: str) -> dict[str, Any]:
        request = urllib.request.Request(self.base + path,
                                         headers={"Authorization": f"Bearer {self.key}"})
        with urllib.request.urlopen(request, timeout=30) as response:
            body: dict[str, Any] = json.loads(response.read())
            return body

    def access_lines(self) -> int:
        """Lines the access log wrote (proof that it was on, as users run it)."""
        with self.log.open("rb") as log:
            return sum(1 for line in log if b"toombos_edge.access" in line)

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def spread(values: list[float], fmt: str = ",.0f") -> str:
    """median [min-max] of per-round values."""
    ordered = sorted(values)
    return (f"{statistics.median(ordered):{fmt}} "
            f"[{ordered[0]:{fmt}}-{ordered[-1]:{fmt}}]")


def met(ok: bool) -> str:
    return "met" if ok else "NOT met"


# -- (a) in-process ------------------------------------------------------------------------

async def _engine_run(jobs: int, workers: int, sync: str, observed: bool) -> dict[str, Any]:
    from toombos_edge.events import EventBus
    from toombos_edge.jobs.engine import JobEngine
    from toombos_edge.jobs.kinds import JobContext, JobKind, KindRegistry
    from toombos_edge.jobs.retry import Backoff
    from toombos_edge.settings import Settings
    from toombos_edge.store import Database
    from toombos_edge.store.sqlite.jobs import SqliteJobStore

    async def noop(ctx: JobContext) -> None:
        return None

    # The server's settings, parsed as the server parses them, built as app.py builds them
    # (database_ctx, engine_ctx); the content cache is left out: a no-op job never uses it.
    settings = Settings.load(server_env(workers, sync))
    folder = Path(tempfile.mkdtemp(prefix="bench-jobs-"))
    db = Database(folder / "edge.db", synchronous=settings.db_synchronous,
                  readers=settings.db_readers, batch_max=settings.db_batch_max)
    await db.open()
    pragmas = await db.write(lambda c: (c.execute("PRAGMA synchronous").fetchone()[0],
                                        c.execute("PRAGMA journal_mode").fetchone()[0]))
    registry = KindRegistry()
    registry.register(JobKind("noop", noop))
    bus = EventBus()
    bus.subscribe(lambda event: None)  # a subscriber, as the hub and activity log are
    engine = JobEngine(SqliteJobStore(db), bus, registry, workers=settings.job_workers,
                       lease_seconds=settings.job_lease_seconds,
                       backoff=Backoff(settings.job_retry_base, settings.job_retry_cap))
    activity = await observe(engine, bus, db, settings, folder) if observed else None
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
    if activity is not None:
        await activity.close()
    await db.close()
    shutil.rmtree(folder)
    total = jobs // producers * producers
    assert done == total, (done, total)
    return {"jobs_per_s": total / elapsed, "submits_per_s": total / submitted,
            "cpu_us_per_job": cpu / total * 1e6, "workers": settings.job_workers,
            "synchronous": PRAGMA_SYNC[pragmas[0]], "journal_mode": pragmas[1]}


async def observe(engine: Any, bus: Any, db: Any, settings: Any, folder: Path) -> Any:
    """What app.py's activity_ctx and metrics_ctx wire to the bus, the writer and the
    engine, with the server's settings; returns the activity log (to close)."""
    from toombos_edge.activity import ActivityLog, JsonLines
    from toombos_edge.metrics import Metrics
    from toombos_edge.store.sqlite.activity import SqliteActivityStore

    file = JsonLines(folder / "activity.jsonl", max_bytes=settings.activity_max_mb << 20,
                     keep=settings.activity_keep)
    activity = ActivityLog(SqliteActivityStore(db), bus, file,
                           max_queued=settings.activity_queue,
                           retention_days=settings.activity_retention_days)
    await activity.start()
    metrics = Metrics()
    bus.subscribe(metrics.jobs.on_event)
    db.on_commit = metrics.commits.observe
    metrics.watch_engine(engine)
    metrics.watch_activity(activity)
    return activity


async def _rows_floor(jobs: int, sync: str) -> dict[str, Any]:
    """CPU per job of storing a no-op job's activity rows alone (:func:`_noop_rows`),
    through the activity store, 1,200 rows a batch (one flush at 8,000 jobs/s). No event,
    no encoding, no file: the part of the observers' cost no tuning of the log goes under."""
    from toombos_edge.settings import Settings
    from toombos_edge.store import Database
    from toombos_edge.store.sqlite.activity import SqliteActivityStore

    settings = Settings.load(server_env(None, sync))
    folder = Path(tempfile.mkdtemp(prefix="bench-floor-"))
    db = Database(folder / "edge.db", synchronous=settings.db_synchronous,
                  readers=settings.db_readers, batch_max=settings.db_batch_max)
    await db.open()
    store, rows = SqliteActivityStore(db), _noop_rows(jobs)
    cpu = time.process_time()
    for start in range(0, len(rows), 1_200):
        await store.insert(rows[start:start + 1_200])
    cpu = time.process_time() - cpu
    await db.close()
    shutil.rmtree(folder)
    return {"cpu_us_per_job": cpu / jobs * 1e6, "rows_per_job": len(rows) / jobs}


def _noop_rows(jobs: int) -> list[Any]:
    """The rows the activity log stores for ``jobs`` no-op jobs (submitted, started,
    completed), made and rendered by its own ``describe`` and ``render``."""
    import dataclasses

    from toombos_edge import events as ev
    from toombos_edge.activity.lines import describe, render
    from toombos_edge.records.activity import LineIds
    from toombos_edge.records.job import Job, JobStatus

    ids, rows = LineIds(), []
    for n in range(jobs):
        now = time.time_ns() // 1_000_000
        job = Job(id=f"job_{n:026d}", kind="noop", status=JobStatus.pending, created_at=now,
                  updated_at=now)
        started = dataclasses.replace(job, status=JobStatus.in_progress, attempts=1,
                                      started_at=now)
        done = dataclasses.replace(started, status=JobStatus.completed, completed_at=now)
        for event in (ev.Event.job(ev.JOB_CREATED, job),
                      ev.Event(ev.JOB_UPDATE, started, note=ev.STARTED),
                      ev.Event.job(ev.JOB_COMPLETED, done)):
            for entry in describe(event, None, None):
                rows.append((ids.next(entry[0]), entry[1], entry[2], entry[6], render(entry)))
    return rows


def inproc(jobs: int, workers: int, sync: str, observed: bool) -> None:
    import uvloop

    uvloop.install()
    print(json.dumps(asyncio.run(_engine_run(jobs, workers, sync, observed))))


def make_huey(filename: str, sync: str) -> Any:
    """SqliteHuey at ``sync``: FULL is its own ``fsync=True``; it has no option for NORMAL."""
    from huey import SqliteHuey
    from huey.storage import SqliteStorage

    class NormalSync(SqliteStorage):
        def _create_connection(self) -> sqlite3.Connection:
            conn: sqlite3.Connection = super()._create_connection()
            conn.execute("PRAGMA synchronous = NORMAL")
            return conn

    if sync == "full":
        return SqliteHuey(filename=filename, results=False, journal_mode="wal", fsync=True)
    return SqliteHuey(filename=filename, results=False, journal_mode="wal",
                      storage_class=NormalSync)


def huey_pragmas(huey: Any) -> tuple[str, str]:
    """(synchronous, journal_mode) of the one connection SqliteHuey commits on."""
    with huey.storage.lock:
        conn = huey.storage.conn
        sync = conn.execute("PRAGMA synchronous").fetchone()[0]
        journal = conn.execute("PRAGMA journal_mode").fetchone()[0]
    return PRAGMA_SYNC[sync], journal


def huey_run(jobs: int, workers: int, sync: str) -> None:
    import huey as huey_package

    folder = Path(tempfile.mkdtemp(prefix="bench-huey-"))
    huey = make_huey(str(folder / "huey.db"), sync)
    before = huey_pragmas(huey)

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
    after = huey_pragmas(huey)  # the same connection all along: it was never reopened
    shutil.rmtree(folder)
    assert before == after, (before, after)
    print(json.dumps({
        "enqueues_per_s": total / t_enqueue,
        "dequeues_per_s": total / t_dequeue,
        "jobs_per_s": total / (t_enqueue + t_dequeue),
        "cpu_us_per_job": cpu / total * 1e6,
        "version": huey_package.__version__,
        "synchronous": after[0], "journal_mode": after[1],
    }))


def ensure_wrk() -> None:
    if shutil.which("wrk") is None:
        subprocess.run(["apt-get", "install", "-y", "-q", "wrk"], check=True)


def ensure_huey() -> None:
    """Huey at exactly HUEY_VERSION in this interpreter's environment."""
    try:
        installed = metadata.version("huey")
    except metadata.PackageNotFoundError:
        installed = None
    if installed != HUEY_VERSION:
        subprocess.run([PY, "-m", "pip", "install", "-q", "--disable-pip-version-check",
                        f"huey=={HUEY_VERSION}"], check=True, timeout=300)


# -- (b) over HTTP ---------------------------------------------------------------------------

def over_http(workers: int, sync: str | None, seconds: int, folder: Path,
              extra: dict[str, str] | None = None) -> tuple[float, int]:
    """(jobs completed per second, access log lines written) for one server run; ``extra``:
    more settings (bench/pg_jobs.py's TOOMBOS_DATABASE_URL)."""
    data = folder / f"http-{time.monotonic_ns()}"
    server = Server(data, make_plugin(folder / "plugin"),
                    {**server_env(workers, sync), **(extra or {})})
    script = folder / "post.lua"
    script.write_text(WRK_SCRIPT % server.key)
    try:
        began = time.perf_counter()
        subprocess.run(
            pinned(["wrk", "-t", "2", "-c", "64", "-d", f"{seconds}s", "-s", str(script),
                    server.base + "/api/jobs"], CPU_LOAD),
            check=True, capture_output=True, timeout=seconds + 60,
        )
        deadline = time.monotonic() + 120
        while server.get("/api/jobs?status=pending,in_progress&limit=1")["total"]:
            if time.monotonic() > deadline:
                raise RuntimeError("jobs still pending 120 s after the load stopped")
            time.sleep(0.01)
        elapsed = time.perf_counter() - began
        completed = server.get("/api/jobs?status=completed&limit=1")["total"]
    finally:
        server.stop()  # its stdout is flushed at exit: count the log's lines after
        lines = server.access_lines()
        shutil.rmtree(data, ignore_errors=True)
        server.log.unlink(missing_ok=True)
    return float(completed) / elapsed, lines


# -- (c) list latency on a big table ---------------------------------------------------------

_B32 = "0123456789abcdefghjkmnpqrstvwxyz"


def _b32(value: int, length: int) -> str:
    return "".join(_B32[(value >> (5 * (length - 1 - i))) & 31] for i in range(length))


def job_rows(rows: int, sample: dict[str, str]) -> Iterator[list[tuple[Any, ...]]]:
    """``rows`` jobs over the last 30 days, in batches of (id, kind, status, document_id,
    correlation_id, created_at, updated_at, due_at); ``sample`` gets values to filter on
    (every backend's list bench fills its table from these same rows)."""
    now = int(time.time() * 1000)
    rng = random.Random(7)
    statuses = ["completed"] * 80 + ["failed"] * 10 + ["cancelled"] * 5 + ["partial"] * 3 + [
        "pending"] * 2
    kinds = ["generate", "generate", "ingest", "publish"]
    year = 365 * 86_400_000
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
        yield batch
    sample["day"] = time.strftime("%Y-%m-%d", time.gmtime((now - 10 * 86_400_000) / 1000))
    sample["doc"] = f"doc_{rows // 8:08d}"[:-1]  # a prefix matching ~40 documents' jobs


def fill(db_path: Path, rows: int) -> dict[str, str]:
    """``rows`` jobs over the last 30 days; returns sample values to filter on."""
    conn = sqlite3.connect(db_path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = OFF")
    conn.execute("PRAGMA cache_size = -262144")
    sample: dict[str, str] = {}
    for batch in job_rows(rows, sample):
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
    return sample


def list_queries(sample: dict[str, str], cursor: str) -> dict[str, str]:
    """The list's filters measured, by name: the query string of each (every backend)."""
    return {
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


def list_latency(rows: int, folder: Path, requests: int) -> dict[str, tuple[float, float]]:
    data = folder / "big"
    data.mkdir(parents=True, exist_ok=True)
    subprocess.run([PY, "-m", "toombos_edge", "migrate", "--data-dir", str(data)],
                   check=True, capture_output=True, cwd=ROOT,
                   env={k: v for k, v in os.environ.items() if not k.startswith("TOOMBOS_")})
    began = time.perf_counter()
    sample = fill(data / "edge.db", rows)
    print(f"  filled {rows:,} rows in {time.perf_counter() - began:.0f} s", flush=True)
    server = Server(data, make_plugin(folder / "plugin"), server_env(None, None))
    try:
        cursor = server.get("/api/jobs?limit=100&offset=1000")["next_cursor"]
        queries = list_queries(sample, cursor)
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

Row = tuple[int, str]  # (workers, synchronous)


def main() -> None:
    from toombos_edge.settings import Settings

    defaults = Settings()
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--workers", default=str(defaults.job_workers),
                        help="comma list of worker counts (default: the server's default)")
    parser.add_argument("--sync", default=",".join(SYNCS), help="comma list of: normal,full")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--http-seconds", type=int, default=5)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--skip", default="", help="comma list of: inproc,http,list")
    parser.add_argument("--observers", action="store_true",
                        help="(a) also with the activity log and the metrics subscribed, "
                             "alternating in the same "
                             "rounds (the issue's at most 5%% fewer jobs/s)")
    args = parser.parse_args()
    skip = set(args.skip.split(","))
    workers = [int(count) for count in args.workers.split(",")]
    syncs = [sync.strip().lower() for sync in args.sync.split(",")]
    if not set(syncs) <= set(SYNCS) or not all(1 <= count <= 256 for count in workers):
        parser.error("--sync takes normal and/or full; --workers counts from 1 to 256")
    if "inproc" not in skip:
        ensure_huey()
    _header(args, workers, syncs)
    summary: list[str] = []
    folder = Path(tempfile.mkdtemp(prefix="bench-jobs-"))
    try:
        if "inproc" not in skip:
            summary += _report_inproc(args, workers, syncs)
        if args.observers:
            summary += _report_observers(args, workers, syncs)
        if "http" not in skip:
            ensure_wrk()
            summary += _report_http(args, workers, syncs, folder)
        if "list" not in skip:
            summary.append(_report_list(args, folder, defaults))
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    print(f"\nSUMMARY (median of {args.rounds} round(s) [min-max]; each goal judged on the "
          f"median; ours at commit {serverconfig.commit()}, peer huey=={HUEY_VERSION})")
    for line in summary:
        print(line)


def _header(args: argparse.Namespace, workers: list[int], syncs: list[str]) -> None:
    print(f"toombos-edge at commit {serverconfig.commit()}; peer: huey=={HUEY_VERSION} "
          "(SqliteHuey, journal_mode=wal), the same worker count in the same round")
    print("ours, per row:")
    for row in [(count, sync) for count in workers for sync in syncs]:
        print(f"  {row[0]} workers, synchronous={row[1]}: "
              f"{serverconfig.describe(server_env(*row))}")
    print("durability: synchronous=NORMAL: a committed job survives a crash of the process, "
          "not a power cut (WAL not fsynced per commit); synchronous=FULL: it survives a power "
          "cut too (WAL fsynced at every commit)", flush=True)


def _order(syncs: list[str], round_number: int) -> list[str]:
    return syncs if round_number % 2 == 0 else syncs[::-1]


def _inproc_pair(jobs: int, count: int, sync: str) -> tuple[dict[str, Any], dict[str, Any]]:
    mine = child("--inproc", str(jobs), str(count), sync)
    theirs = child("--huey", str(jobs), str(count), sync)
    for side in (mine, theirs):  # a figure at another setting than the row's is no figure
        if (side["synchronous"], side["journal_mode"].lower()) != (sync, "wal"):
            raise RuntimeError(f"asked for synchronous={sync}, journal WAL; got {side}")
    if theirs["version"] != HUEY_VERSION:
        raise RuntimeError(f"huey {theirs['version']} ran, not {HUEY_VERSION}")
    return mine, theirs


def _report_inproc(args: argparse.Namespace, workers: list[int], syncs: list[str]) -> list[str]:
    print(f"(a) in-process, one CPU, {args.jobs:,} no-op jobs a run:", flush=True)
    ours: dict[Row, list[float]] = {}
    peer: dict[Row, list[float]] = {}
    ratios: dict[Row, list[float]] = {}
    for n in range(args.rounds):
        for count in workers:
            for sync in _order(syncs, n):
                mine, theirs = _inproc_pair(args.jobs, count, sync)
                row = (count, sync)
                ours.setdefault(row, []).append(mine["jobs_per_s"])
                peer.setdefault(row, []).append(theirs["jobs_per_s"])
                ratios.setdefault(row, []).append(mine["jobs_per_s"] / theirs["jobs_per_s"])
                print(f"  round {n + 1}, {count} workers, synchronous={sync.upper()} (checked "
                      f"on both connections): ours {mine['jobs_per_s']:,.0f} jobs/s "
                      f"({mine['cpu_us_per_job']:.0f} us CPU/job); huey "
                      f"{theirs['jobs_per_s']:,.0f} jobs/s ({theirs['cpu_us_per_job']:.0f} us "
                      f"CPU/job; enqueue {theirs['enqueues_per_s']:,.0f}/s, dequeue+run "
                      f"{theirs['dequeues_per_s']:,.0f}/s); ratio {ratios[row][-1]:.2f}",
                      flush=True)
    lines = []
    for row in [(count, sync) for count in workers for sync in syncs]:
        rate, ratio = statistics.median(ours[row]), statistics.median(ratios[row])
        lines.append(
            f"(a) in-process, synchronous={row[1].upper()} ({SURVIVES[row[1]]}), "
            f"{row[0]} workers: "
            f"ours {spread(ours[row])} jobs/s | huey {HUEY_VERSION} {spread(peer[row])} jobs/s "
            f"| ratio {ratio:.2f}x [{min(ratios[row]):.2f}-{max(ratios[row]):.2f}] "
            f"| goals: >= {GOAL_INPROC:,} jobs/s "
            f"{met(rate >= GOAL_INPROC)}, >= {GOAL_RATIO:g}x huey {met(ratio >= GOAL_RATIO)} "
            f"| journal_mode=WAL both, one CPU each, {args.jobs:,} jobs, ours at the "
            "server's defaults but these two settings")
    return lines


def _report_observers(args: argparse.Namespace, workers: list[int],
                      syncs: list[str]) -> list[str]:
    """In-process jobs/s without and with the observers, alternating in each round."""
    print("(a') in-process, observers off and on in turn:", flush=True)
    lines = []
    for count in workers:
        for sync in syncs:
            off: list[float] = []
            on: list[float] = []
            floors: list[dict[str, Any]] = []
            for n in range(args.rounds):
                for mode in (["off", "on"] if n % 2 == 0 else ["on", "off"]):
                    extra = ["observed"] if mode == "on" else []
                    rate = child("--inproc", str(args.jobs), str(count), sync, *extra)
                    (on if mode == "on" else off).append(rate["jobs_per_s"])
                floors.append(child("--floor", str(args.jobs), sync))
                print(f"  round {n + 1}, {count} workers, {sync}: off {off[-1]:,.0f}, on "
                      f"{on[-1]:,.0f} jobs/s ({on[-1] / off[-1] - 1:+.1%}); the rows alone "
                      f"{floors[-1]['cpu_us_per_job']:.1f} us CPU a job", flush=True)
            change = statistics.median(on) / statistics.median(off) - 1
            lines.append(
                f"(a') observers, synchronous={sync.upper()}, {count} workers: on {spread(on)} "
                f"jobs/s | off {spread(off)} jobs/s | change {change:+.1%} | goal: no worse "
                f"than -5% {met(change >= -0.05)} | the activity log and the metrics subscribed as "
                "app.py does")
            lines.append(_floor_line(count, sync, floors, statistics.median(off)))
    return lines


def _floor_line(count: int, sync: str, floors: list[dict[str, Any]], off_rate: float) -> str:
    """The rows' CPU a job beside what -5% of jobs/s leaves a job: a reading of the
    observers' row, with no goal of its own."""
    floor = statistics.median(result["cpu_us_per_job"] for result in floors)
    budget = 0.05 * 1e6 / off_rate  # a job's time with the observers off, 5% of it
    return (f"(a') observers' floor, synchronous={sync.upper()}, {count} workers: a job's "
            f"{floors[0]['rows_per_job']:g} activity rows stored alone {floor:.1f} us CPU "
            f"[{min(r['cpu_us_per_job'] for r in floors):.1f}-"
            f"{max(r['cpu_us_per_job'] for r in floors):.1f}] | -5% of {off_rate:,.0f} jobs/s "
            f"leaves {budget:.1f} us a job for every observer: the rows alone are "
            f"{floor / budget:.1f}x that | no goal (a reading); rows prebuilt, stored through "
            "the activity store in batches of 1,200, one CPU")


def _report_http(args: argparse.Namespace, workers: list[int], syncs: list[str],
                 folder: Path) -> list[str]:
    print(f"(b) over HTTP: POST /api/jobs from wrk, 64 connections, {args.http_seconds} s a "
          "run, server on one CPU, wrk on the other:", flush=True)
    rates: dict[Row, list[float]] = {}
    for n in range(args.rounds):
        for count in workers:
            for sync in _order(syncs, n):
                rate, lines = over_http(count, sync, args.http_seconds, folder)
                rates.setdefault((count, sync), []).append(rate)
                print(f"  round {n + 1}, {count} workers, synchronous={sync.upper()}: "
                      f"{rate:,.0f} jobs/s (access log: {lines:,} lines)", flush=True)
    return [
        f"(b) over HTTP, synchronous={row[1].upper()} ({SURVIVES[row[1]]}), {row[0]} workers: "
        f"ours "
        f"{spread(rates[row])} jobs/s | peer: none (Huey has no HTTP front) | ratio: - | "
        f"goal: >= {GOAL_HTTP:,} jobs/s {met(statistics.median(rates[row]) >= GOAL_HTTP)} | "
        f"journal_mode=WAL, server default configuration but these two settings (access log "
        f"on), wrk 64 connections, {args.http_seconds} s a run"
        for row in [(count, sync) for count in workers for sync in syncs]
    ]


def _report_list(args: argparse.Namespace, folder: Path, defaults: Any) -> str:
    print(f"(c) GET /api/jobs?limit=100 on {args.rows:,} jobs, {args.requests} sequential "
          "requests per filter, server in its default configuration:", flush=True)
    results = list_latency(args.rows, folder, args.requests)
    for name, (p50, p99) in results.items():
        print(f"  {name:28s} p50 {p50:6.2f} ms  p99 {p99:6.2f} ms")
    worst = max(results, key=lambda name: results[name][1])
    p99 = results[worst][1]
    return (f"(c) list latency, {args.rows:,} jobs: ours worst p99 {p99:.2f} ms ({worst}) over "
            f"{len(results)} filters | peer: none | ratio: - | goal: p99 < {GOAL_LIST_P99_MS:g} "
            f"ms on every filter {met(p99 < GOAL_LIST_P99_MS)} | server default configuration "
            f"({defaults.job_workers} workers, synchronous={defaults.db_synchronous.upper()}, "
            f"WAL, access log on), {args.requests} requests per filter on one keep-alive "
            "connection")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--inproc":
        inproc(int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5:] == ["observed"])
    elif len(sys.argv) > 1 and sys.argv[1] == "--floor":
        print(json.dumps(asyncio.run(_rows_floor(int(sys.argv[2]), sys.argv[3]))))
    elif len(sys.argv) > 1 and sys.argv[1] == "--huey":
        huey_run(int(sys.argv[2]), int(sys.argv[3]), sys.argv[4])
    else:
        main()
