"""The activity log's cost: event-loop lag under an event storm, and jobs/s with it on.

    .venv/bin/python -m bench.activity [--rate 10000] [--seconds 10] [--jobs 20000] [--rounds 3]

(a) ``--rate`` activity events per second for ``--seconds`` (in 1 ms ticks) on a real
ActivityLog (its own SQLite file and JSONL file, uvloop), while a probe measures how late
a 1 ms sleep wakes up: the event-loop lag. Goal: max lag < 10 ms, and written + dropped
(+ skipped) = the events published. (b) in-process no-op jobs/s through the engine with
and without the activity log subscribed, alternating in each round (each run a fresh
subprocess). Goal: at most 5% fewer jobs/s with it on.
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
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


async def _storm(rate: int, seconds: float, with_log: bool) -> dict[str, Any]:
    from toombos_edge.activity import ActivityLog, JsonLines
    from toombos_edge.events import QUERY_COMPLETE, Event, EventBus
    from toombos_edge.serving import settle_heap
    from toombos_edge.store import Database
    from toombos_edge.store.sqlite.activity import SqliteActivityStore

    folder = Path(tempfile.mkdtemp(prefix="bench-activity-"))
    db = Database(folder / "edge.db")
    await db.open()
    bus = EventBus()
    store = SqliteActivityStore(db)
    log = ActivityLog(store, bus, JsonLines(folder / "activity.jsonl", max_bytes=100 << 20,
                                         keep=2))
    if with_log:
        await log.start()
    settle_heap()  # as the server does once started
    lags: list[float] = []
    stop = asyncio.Event()

    async def probe() -> None:
        while not stop.is_set():
            began = time.perf_counter()
            await asyncio.sleep(0.001)
            lags.append((time.perf_counter() - began - 0.001) * 1000)

    prober = asyncio.create_task(probe())
    published, began = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - began) < seconds:
        due = int(elapsed * rate)
        for _ in range(due - published):
            bus.publish(Event.data(QUERY_COMPLETE, {"query": "storm", "hits": published}))
        published = max(published, due)
        await asyncio.sleep(0.001)
    stop.set()
    await prober
    await log.close()
    await db.close()
    shutil.rmtree(folder)
    lags.sort()
    return {"published": published, "received": log.received, "written": log.written,
            "dropped": log.dropped, "skipped": log.skipped,
            "lag_p99_ms": lags[int(len(lags) * 0.99)], "lag_max_ms": lags[-1],
            "over_10ms": sum(1 for lag in lags if lag >= 10), "probes": len(lags)}


async def _jobs(jobs: int, workers: int, with_log: bool) -> dict[str, Any]:
    from toombos_edge.activity import ActivityLog, JsonLines
    from toombos_edge.events import EventBus
    from toombos_edge.jobs.engine import JobEngine
    from toombos_edge.jobs.kinds import JobContext, JobKind, KindRegistry
    from toombos_edge.store import Database
    from toombos_edge.store.sqlite.activity import SqliteActivityStore
    from toombos_edge.store.sqlite.jobs import SqliteJobStore

    async def noop(ctx: JobContext) -> None:
        return None

    folder = Path(tempfile.mkdtemp(prefix="bench-activity-jobs-"))
    db = Database(folder / "edge.db")
    await db.open()
    registry = KindRegistry()
    registry.register(JobKind("noop", noop))
    bus = EventBus()
    bus.subscribe(lambda event: None)  # the hub's place, as in bench/jobs.py
    store = SqliteActivityStore(db)
    log = ActivityLog(store, bus, JsonLines(folder / "activity.jsonl", max_bytes=100 << 20,
                                         keep=2))
    if with_log:
        await log.start()
    engine = JobEngine(SqliteJobStore(db), bus, registry, workers=workers)
    await engine.start()
    producers = 256

    async def produce(count: int) -> None:
        for _ in range(count):
            await engine.submit("noop")

    began = time.perf_counter()
    await asyncio.gather(*(produce(jobs // producers) for _ in range(producers)))
    await engine.join()
    elapsed = time.perf_counter() - began
    await engine.stop(5)
    await log.close()
    lines = await db.read(lambda c: c.execute("SELECT count(*) FROM activity").fetchone()[0])
    await db.close()
    shutil.rmtree(folder)
    total = jobs // producers * producers
    return {"jobs_per_s": total / elapsed, "lines": lines, "dropped": log.dropped}


def _child(*args: str) -> dict[str, Any]:
    out = subprocess.run([sys.executable, "-m", "bench.activity", *args], capture_output=True,
                         text=True, check=True, cwd=ROOT).stdout
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


def _run_child(argv: list[str]) -> None:
    import uvloop

    uvloop.install()
    if argv[0] == "--storm-child":
        result = asyncio.run(_storm(int(argv[1]), float(argv[2]), argv[3] == "on"))
    else:
        result = asyncio.run(_jobs(int(argv[1]), int(argv[2]), argv[3] == "on"))
    print(json.dumps(result))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rate", type=int, default=10_000)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--skip", default="", help="comma list of: storm,jobs")
    args = parser.parse_args()
    skip = set(args.skip.split(","))
    if "storm" not in skip:
        bare = _child("--storm-child", str(args.rate), str(args.seconds), "off")
        print(f"    the same storm with no activity log: lag p99 {bare['lag_p99_ms']:.2f} ms, "
              f"max {bare['lag_max_ms']:.2f} ms, {bare['over_10ms']} of {bare['probes']:,} "
              "probes >= 10 ms (the machine's own)", flush=True)
        storm = _child("--storm-child", str(args.rate), str(args.seconds), "on")
        accounted = storm["written"] + storm["dropped"] + storm["skipped"]
        print(f"(a) {args.rate:,} events/s for {args.seconds:g} s: lag p99 "
              f"{storm['lag_p99_ms']:.2f} ms, max {storm['lag_max_ms']:.2f} ms (goal < 10), "
              f"{storm['over_10ms']} of {storm['probes']:,} probes >= 10 ms; "
              f"published {storm['published']:,}, written {storm['written']:,} + dropped "
              f"{storm['dropped']:,} + skipped {storm['skipped']:,} = {accounted:,} "
              f"({'adds up' if accounted == storm['published'] else 'DOES NOT ADD UP'})",
              flush=True)
    if "jobs" not in skip:
        on, off = [], []
        for n in range(args.rounds):
            without = _child("--jobs-child", str(args.jobs), str(args.workers), "off")
            with_log = _child("--jobs-child", str(args.jobs), str(args.workers), "on")
            off.append(without["jobs_per_s"])
            on.append(with_log["jobs_per_s"])
            print(f"  round {n + 1}: off {off[-1]:,.0f} jobs/s, on {on[-1]:,.0f} jobs/s "
                  f"({with_log['lines']:,} lines, {with_log['dropped']:,} dropped); "
                  f"{(on[-1] / off[-1] - 1) * 100:+.1f}%", flush=True)
        change = (statistics.median(on) / statistics.median(off) - 1) * 100
        print(f"(b) in-process, {args.jobs:,} no-op jobs, {args.workers} workers: off "
              f"{statistics.median(off):,.0f}, on {statistics.median(on):,.0f} jobs/s "
              f"(median), {change:+.1f}% (goal >= -5%)", flush=True)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] in {"--storm-child", "--jobs-child"}:
        _run_child(sys.argv[1:])
    else:
        main()
