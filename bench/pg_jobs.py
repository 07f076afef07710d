"""Durable job throughput on PostgreSQL, beside PgQueuer and procrastinate on the same server.

    .venv/bin/python -m bench.pg_jobs [--jobs 10000] [--workers 8] [--rounds 3]
                                      [--skip inproc,nodes,list] [--rows 1000000]

One PostgreSQL (Debian's, started by the bench in a temporary directory, bench/pgcluster.py)
serves every side, with ``fsync``, ``synchronous_commit`` and ``full_page_writes`` on: a
job acknowledged survives a power cut, on every side (each side reads the two settings
back from the connection it commits on). Each run gets a fresh database on that server.

(a) one node, in-process: N no-op jobs submitted from 256 concurrent tasks (one job per
    call) to a JobEngine over PgJobStore, until every completion is committed (``join``).
    Peers: PgQueuer and procrastinate, pinned, each in a venv of its own
    (bench/pg_peers.py), the same N jobs enqueued the same way, the same worker count,
    timed until every outcome is committed (bench/peers/pg_peer.py). The client process on
    CPU 0, PostgreSQL's processes on CPU 1.
(b) two nodes: two processes, each an engine over PgJobStore on the same database, each
    submitting half of N (started together), against one such process submitting all N,
    in the same round. Neither the processes nor the database are pinned: two cores in
    all, shared by the nodes and PostgreSQL, so this shows what sharing one queue costs or
    gains on this machine, not how far more machines go.
(c) the jobs list on --rows jobs in PostgreSQL (bench/pg_list.py).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from bench import pg_peers, pgcluster, serverconfig

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
CPU_CLIENT, CPU_DB = 0, 1
PRODUCERS = 256
GOALS = {"pgqueuer": 1.0, "procrastinate": 2.0}  #: ours / theirs, at least


def taskset(cpu: int | None) -> list[str]:
    return [] if cpu is None else ["taskset", "-c", str(cpu)]


# -- ours: one engine over PgJobStore ----------------------------------------------------------

async def _engine(url: str, workers: int) -> tuple[Any, Any, list[str]]:
    """(engine, database, [synchronous_commit, fsync]) built as the server builds them on
    PostgreSQL (backends.py, app.py's engine_ctx), with the server's default settings but
    the worker count; the other nodes' wake-ups (jobs/nodes.py) are left out: each node here
    submits its own jobs (the servers of (b') have them)."""
    from toombos_edge.events import EventBus
    from toombos_edge.jobs.engine import JobEngine
    from toombos_edge.jobs.kinds import JobContext, JobKind, KindRegistry
    from toombos_edge.jobs.retry import Backoff
    from toombos_edge.settings import Settings
    from toombos_edge.store.postgres.database import PgDatabase
    from toombos_edge.store.postgres.jobs import PgJobStore

    async def noop(ctx: JobContext) -> None:
        return None

    settings = Settings.load({"TOOMBOS_JOB_WORKERS": str(workers)})
    db = PgDatabase(url, pool_size=settings.db_pool_size)  # as backends.py opens it
    await db.open()
    checked = list(await db.fetchrow(pgcluster.CHECK_SQL) or ())
    registry = KindRegistry()
    registry.register(JobKind("noop", noop))
    bus = EventBus()
    bus.subscribe(lambda event: None)  # a subscriber, as the hub and activity log are
    engine = JobEngine(PgJobStore(db), bus, registry, workers=settings.job_workers,
                       lease_seconds=settings.job_lease_seconds,
                       backoff=Backoff(settings.job_retry_base, settings.job_retry_cap),
                       poll_seconds=settings.job_poll_seconds)  # as app.py's on PostgreSQL
    await engine.start()
    return engine, db, checked


async def _submit_all(engine: Any, total: int) -> float:
    """Submit ``total`` jobs from PRODUCERS tasks, then wait for every outcome committed;
    returns the seconds the submissions took."""
    async def produce(count: int) -> None:
        for _ in range(count):
            await engine.submit("noop")

    began = time.perf_counter()
    await asyncio.gather(*(produce(total // PRODUCERS) for _ in range(PRODUCERS)))
    submitted = time.perf_counter() - began
    await engine.join()
    return submitted


async def _inproc(url: str, jobs: int, workers: int) -> dict[str, Any]:
    engine, db, checked = await _engine(url, workers)
    total = jobs // PRODUCERS * PRODUCERS
    began, cpu = time.perf_counter(), time.process_time()
    submitted = await _submit_all(engine, total)
    elapsed, cpu = time.perf_counter() - began, time.process_time() - cpu
    done = await db.fetchval("SELECT count(*) FROM jobs WHERE status = 'completed'")
    await engine.stop(5)
    await db.close()
    assert done == total, (done, total)
    return {"jobs_per_s": total / elapsed, "submits_per_s": total / submitted,
            "cpu_us_per_job": cpu / total * 1e6, "settings": checked}


async def _node(url: str, jobs: int, workers: int) -> dict[str, Any]:
    """One node of (b): ready, then (on a line from stdin) submit ``jobs`` and run until
    this node is idle; the parent checks the whole database after."""
    engine, db, checked = await _engine(url, workers)
    print("ready", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    began = time.time()
    await _submit_all(engine, jobs)
    ended = time.time()
    ran = engine.counters["completed"]
    await engine.stop(5)
    await db.close()
    return {"began": began, "ended": ended, "ran": ran, "settings": checked}


def child(mode: str, *args: str) -> None:
    import uvloop

    uvloop.install()
    run = {"--inproc": _inproc, "--node": _node}[mode]
    print(json.dumps(asyncio.run(run(args[0], int(args[1]), int(args[2])))))


def ours(url: str, jobs: int, workers: int) -> dict[str, Any]:
    out = subprocess.run([*taskset(CPU_CLIENT), PY, "-m", "bench.pg_jobs", "--inproc", url,
                          str(jobs), str(workers)], check=True, capture_output=True,
                         text=True, cwd=ROOT, timeout=900)
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def nodes(url: str, count: int, jobs: int, workers: int) -> dict[str, Any]:
    """``count`` node processes on one database, ``jobs`` in all, started together."""
    procs = [subprocess.Popen([PY, "-m", "bench.pg_jobs", "--node", url, str(jobs // count),
                               str(workers)], cwd=ROOT, stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True) for _ in range(count)]
    try:
        for proc in procs:
            assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        results = []
        for proc in procs:
            out, _ = proc.communicate(timeout=900)
            results.append(json.loads(out.strip().splitlines()[-1]))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    total = jobs // count // PRODUCERS * PRODUCERS * count
    done = asyncio.run(_count_completed(url))
    assert done == total, (done, total)
    elapsed = max(r["ended"] for r in results) - min(r["began"] for r in results)
    return {"jobs_per_s": total / elapsed, "ran": [r["ran"] for r in results],
            "settings": results[0]["settings"]}


async def _count_completed(url: str) -> int:
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        return int(await conn.fetchval("SELECT count(*) FROM jobs WHERE status = 'completed'"))
    finally:
        await conn.close()


# -- the rounds --------------------------------------------------------------------------------

def spread(values: list[float], fmt: str = ",.0f") -> str:
    ordered = sorted(values)
    return f"{statistics.median(ordered):{fmt}} [{ordered[0]:{fmt}}-{ordered[-1]:{fmt}}]"


def met(ok: bool) -> str:
    return "met" if ok else "NOT met"


def fresh(running: Any) -> tuple[str, str]:
    name = f"b_{uuid.uuid4().hex[:10]}"
    return name, pgcluster.create_database(running, name)


def measure(running: Any, side: str, jobs: int, workers: int) -> dict[str, Any]:
    name, url = fresh(running)
    try:
        if side == "ours":
            result = ours(url, jobs, workers)
        else:
            result = pg_peers.run(side, url, jobs, workers, taskset(CPU_CLIENT))
    finally:
        pgcluster.drop_database(running, name)
    pgcluster.checked(result["settings"])
    return result


def report_one_node(running: Any, args: argparse.Namespace, workers: list[int]) -> list[str]:
    sides = ["ours", *pg_peers.PEERS]
    print(f"(a) one node, {args.jobs:,} no-op jobs a run, client on CPU {CPU_CLIENT}, "
          f"PostgreSQL on CPU {CPU_DB}:", flush=True)
    rates: dict[tuple[int, str], list[float]] = {}
    lines = []
    for n in range(args.rounds):
        for count in workers:
            order = sides if n % 2 == 0 else [sides[0], *sides[:0:-1]]
            got = {side: measure(running, side, args.jobs, count) for side in order}
            for side in sides:
                rates.setdefault((count, side), []).append(got[side]["jobs_per_s"])
            print(f"  round {n + 1}, {count} workers: " + "; ".join(
                f"{side} {got[side]['jobs_per_s']:,.0f} jobs/s "
                f"({got[side]['cpu_us_per_job']:.0f} us client CPU/job, submits "
                f"{got[side]['submits_per_s']:,.0f}/s)" for side in sides), flush=True)
            print(f"    rows they kept per job: pgqueuer_log "
                  f"{got['pgqueuer']['log_rows_per_job']}, procrastinate_events "
                  f"{got['procrastinate']['events_per_job']:g}", flush=True)
    for count in workers:
        mine = rates[(count, "ours")]
        for peer in pg_peers.PEERS:
            theirs = rates[(count, peer)]
            ratios = [a / b for a, b in zip(mine, theirs, strict=True)]
            ratio = statistics.median(ratios)
            lines.append(
                f"(a) one node, {count} workers: ours {spread(mine)} jobs/s | {peer} "
                f"{pg_peers.PEERS[peer][peer]} {spread(theirs)} jobs/s | ratio {ratio:.2f}x "
                f"[{min(ratios):.2f}-{max(ratios):.2f}] | goal >= {GOALS[peer]:g}x "
                f"{met(ratio >= GOALS[peer])} | synchronous_commit=on, fsync=on (read back "
                f"on every side), {args.jobs:,} jobs from {PRODUCERS} producers, one job "
                f"per call, pool of 10 connections each")
    return lines


def report_http(running: Any, args: argparse.Namespace, workers: list[int]) -> list[str]:
    """bench/jobs.py's (b) against the server on PostgreSQL: wrk POSTs for a few seconds,
    then the rate of jobs completed from the first request to the last completion."""
    from bench import jobs as sqlite_bench

    sqlite_bench.ensure_wrk()
    print(f"(a') over HTTP: POST /api/jobs from wrk, 64 connections, {args.http_seconds} s a "
          f"run, the server on CPU {sqlite_bench.CPU_SERVER}, wrk and PostgreSQL on CPU "
          f"{sqlite_bench.CPU_LOAD}:", flush=True)
    folder = Path(tempfile.mkdtemp(prefix="bench-pghttp-"))
    lines = []
    try:
        for count in workers:
            rates = []
            for n in range(args.rounds):
                name, url = fresh(running)
                try:
                    rate, logged = sqlite_bench.over_http(
                        count, None, args.http_seconds, folder,
                        {"TOOMBOS_DATABASE_URL": url})
                finally:
                    pgcluster.drop_database(running, name)
                rates.append(rate)
                print(f"  round {n + 1}, {count} workers: {rate:,.0f} jobs/s (access log: "
                      f"{logged:,} lines)", flush=True)
            lines.append(
                f"(a') over HTTP on PostgreSQL, {count} workers: ours {spread(rates)} jobs/s "
                "| peer: none (neither peer has an HTTP front) | ratio: - | goal: none set "
                "(SQLite's is >= 3,000/s) | server default configuration but "
                f"TOOMBOS_DATABASE_URL and TOOMBOS_JOB_WORKERS (access log on), wrk 64 "
                f"connections, {args.http_seconds} s a run, synchronous_commit=on, fsync=on")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return lines


def http_nodes(url: str, count: int, workers: int, seconds: int, folder: Path) -> float:
    """Jobs/s of ``count`` servers on the database at ``url``, wrk POSTing to the first
    only: the others take jobs through the shared queue (woken by LISTEN/NOTIFY)."""
    from bench import jobs as sqlite_bench

    settings = {**sqlite_bench.server_env(workers, None), "TOOMBOS_DATABASE_URL": url}
    plugin = sqlite_bench.make_plugin(folder / "plugin")
    servers: list[Any] = []
    try:
        for n in range(count):
            servers.append(sqlite_bench.Server(
                folder / f"node-{n}-{time.monotonic_ns()}", plugin, settings, cpu=None,
                key=servers[0].key if servers else None))
        first = servers[0]
        script = folder / "post.lua"
        script.write_text(sqlite_bench.WRK_SCRIPT % first.key)
        began = time.perf_counter()
        subprocess.run(["wrk", "-t", "2", "-c", "64", "-d", f"{seconds}s", "-s", str(script),
                        first.base + "/api/jobs"], check=True, capture_output=True,
                       timeout=seconds + 60)
        deadline = time.monotonic() + 120
        while first.get("/api/jobs?status=pending,in_progress&limit=1")["total"]:
            if time.monotonic() > deadline:
                raise RuntimeError("jobs still pending 120 s after the load stopped")
            time.sleep(0.01)
        elapsed = time.perf_counter() - began
        completed = first.get("/api/jobs?status=completed&limit=1")["total"]
    finally:
        for server in servers:
            server.stop()
    return float(completed) / elapsed


def report_http_nodes(running: Any, args: argparse.Namespace,
                      workers: list[int]) -> list[str]:
    from bench import jobs as sqlite_bench

    sqlite_bench.ensure_wrk()
    print(f"(b') over HTTP, one server against two on one database, wrk POSTing to the "
          f"first only, 64 connections, {args.http_seconds} s a run, nothing pinned:",
          flush=True)
    folder = Path(tempfile.mkdtemp(prefix="bench-pgnodes-"))
    lines = []
    try:
        for count in workers:
            one: list[float] = []
            two: list[float] = []
            for n in range(args.rounds):
                for size in ([1, 2] if n % 2 == 0 else [2, 1]):
                    name, url = fresh(running)
                    try:
                        rate = http_nodes(url, size, count, args.http_seconds, folder)
                    finally:
                        pgcluster.drop_database(running, name)
                    (one if size == 1 else two).append(rate)
                    print(f"  round {n + 1}, {count} workers a node, {size} server(s): "
                          f"{rate:,.0f} jobs/s", flush=True)
            ratio = statistics.median(two) / statistics.median(one)
            lines.append(
                f"(b') two servers, {count} workers each, requests to one: {spread(two)} "
                f"jobs/s | one server {spread(one)} jobs/s | two/one {ratio:.2f}x | goal: "
                "none set (reported) | the servers, wrk and PostgreSQL (fsync and "
                "synchronous_commit on) share 2 cores, nothing pinned; server default "
                "configuration but TOOMBOS_DATABASE_URL and TOOMBOS_JOB_WORKERS")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return lines


def report_nodes(running: Any, args: argparse.Namespace, workers: list[int]) -> list[str]:
    print(f"(b) one node against two on one database, {args.jobs:,} jobs in all, nothing "
          "pinned (2 cores for the nodes and PostgreSQL together):", flush=True)
    lines = []
    for count in workers:
        one: list[float] = []
        two: list[float] = []
        for n in range(args.rounds):
            for size in ([1, 2] if n % 2 == 0 else [2, 1]):
                name, url = fresh(running)
                try:
                    result = nodes(url, size, args.jobs, count)
                finally:
                    pgcluster.drop_database(running, name)
                pgcluster.checked(result["settings"])
                (one if size == 1 else two).append(result["jobs_per_s"])
                print(f"  round {n + 1}, {count} workers a node, {size} node(s): "
                      f"{result['jobs_per_s']:,.0f} jobs/s (run per node: {result['ran']})",
                      flush=True)
        ratio = statistics.median(two) / statistics.median(one)
        lines.append(
            f"(b) two nodes, {count} workers each: {spread(two)} jobs/s | one node "
            f"{spread(one)} jobs/s | two/one {ratio:.2f}x | goal: none set (reported) | "
            "one database, each node submitting half; 2 cores shared by both nodes and "
            "PostgreSQL (fsync and synchronous_commit on), nothing pinned")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--workers", default="8", help="comma list of worker counts")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--http-seconds", type=int, default=5)
    parser.add_argument("--skip", default="",
                        help="comma list of: inproc,http,nodes,http-nodes,list")
    args = parser.parse_args()
    skip = set(args.skip.split(","))
    workers = [int(count) for count in args.workers.split(",")]
    if "inproc" not in skip:
        for peer in pg_peers.PEERS:
            pg_peers.python(peer)
    print(f"toombos-edge at commit {serverconfig.commit()}; peers: " + ", ".join(
        f"{peer}=={pins[peer]}" for peer, pins in pg_peers.PEERS.items()))
    print(f"PostgreSQL: {pgcluster.OPTIONS}")
    print("what each side keeps per job:")
    for side, kept in pg_peers.RECORDS.items():
        print(f"  {side}: {kept}")
    summary: list[str] = []
    with pgcluster.cluster() as running:
        version = subprocess.run([str(running.bindir / "postgres"), "--version"],
                                 capture_output=True, text=True, check=True).stdout.strip()
        print(f"server: {version}", flush=True)
        if "inproc" not in skip:
            pgcluster.pin(running.root / "data", CPU_DB)
            summary += report_one_node(running, args, workers)
        if "http" not in skip:
            pgcluster.pin(running.root / "data", CPU_DB)
            summary += report_http(running, args, workers)
        if "nodes" not in skip:
            pgcluster.unpin(running.root / "data")
            summary += report_nodes(running, args, workers)
        if "http-nodes" not in skip:
            summary += report_http_nodes(running, args, workers)
        if "list" not in skip:
            from bench import pg_list

            summary.append(pg_list.report(running, args.rows, args.requests))
    print(f"\nSUMMARY ((a) and (b): median of {args.rounds} round(s) [min-max], each ratio "
          f"judged on its median; (c): one run; ours at commit {serverconfig.commit()}; "
          f"{version})")
    for line in summary:
        print(line)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] in ("--inproc", "--node"):
        child(sys.argv[1], *sys.argv[2:])
    else:
        main()
