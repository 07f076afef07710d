"""GET /api/v2/analytics/jobs for 30 days over a big jobs table: p50 and p99.

A data dir is migrated by the server's own `migrate`, then filled directly in SQLite with
--jobs jobs spread over the last 30 days (kinds, statuses, channels and run times drawn at
random, the newest 8 running; the way bench/jobs.py fills its list bench), and the counters
the store keeps (job_counts, job_hours) are rebuilt from those rows once. The real server
(pinned to CPU 0) then answers --requests sequential requests on one keep-alive connection
from this process (CPU 1), with the analytics answer cache off (every request counts again).

    .venv/bin/python -m bench.analytics [--jobs 1000000] [--requests 500]
"""

from __future__ import annotations

import argparse
import http.client
import json
import random
import shutil
import sqlite3
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from bench.common import PY, ROOT, free_port, start, stop, wait_url
from toombos_edge.ids import id_floor, iso
from toombos_edge.store.sqlite import rollup

GOAL_P99_MS = 50.0
DAY_MS = 86_400_000
CHANNELS = ["email", "website", "social_twitter", "social_linkedin", "social_facebook"]
STATUSES = ["completed"] * 80 + ["failed"] * 8 + ["partial"] * 4 + ["cancelled"] * 4 + [
    "pending"] * 4
RUNNING = 8  # the newest jobs are running, as many as a server's workers
KINDS = ["generate", "generate", "ingest", "publish"]
RAN = ("completed", "partial", "failed")


def fill(db_path: Path, jobs: int, now: int) -> None:
    """``jobs`` rows over the 30 days before ``now``, then the counters rebuilt once."""
    rng = random.Random(7)
    conn = sqlite3.connect(db_path, isolation_level=None)
    conn.execute("PRAGMA synchronous = OFF")
    conn.execute("PRAGMA cache_size = -262144")
    step = 30 * DAY_MS // jobs
    for first in range(0, jobs, 50_000):
        rows = [_row(rng, now - 30 * DAY_MS + n * step, n, running=n >= jobs - RUNNING)
                for n in range(first, min(jobs, first + 50_000))]
        conn.execute("BEGIN")
        conn.executemany(
            "INSERT INTO jobs (id, kind, status, channels, created_at, updated_at, due_at, "
            "started_at, completed_at, max_attempts) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 3)",
            rows)
        conn.execute("COMMIT")
    _rebuild_counters(conn)
    conn.execute("ANALYZE")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # serve from the main file, as in life
    conn.close()


def _row(rng: random.Random, created: int, n: int, running: bool) -> tuple[object, ...]:
    status = "in_progress" if running else rng.choice(STATUSES)
    kind = rng.choice(KINDS)
    channels = rng.sample(CHANNELS, rng.randint(1, 5)) if kind != "ingest" else []
    started = created + rng.randint(0, 2000) if status != "pending" else None
    ended = None
    if status in RAN or (status == "cancelled" and started is not None):
        ended = (started or created) + rng.randint(200, 20_000)
    job_id = id_floor("job", created)[:14] + f"{n:016d}"  # time-sortable, unique
    return (job_id, kind, status, json.dumps(channels), created, ended or created, created,
            started, ended)


def _rebuild_counters(conn: sqlite3.Connection) -> None:
    """job_counts and job_hours from the rows (what the store keeps as jobs change)."""
    conn.execute("BEGIN")
    conn.execute("DELETE FROM job_counts")
    conn.execute("INSERT INTO job_counts (kind, status, n) "
                 "SELECT kind, status, count(*) FROM jobs GROUP BY kind, status")
    rollup.rebuild(conn)
    conn.execute("COMMIT")


def latency(port: int, key: str, path: str, requests: int) -> tuple[float, float]:
    """p50 and p99 in ms of ``requests`` sequential GETs (after 10 that warm the caches)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    times = []
    for n in range(requests + 10):
        began = time.perf_counter()
        conn.request("GET", path, headers=headers)
        response = conn.getresponse()
        body = response.read()
        if n >= 10:
            times.append((time.perf_counter() - began) * 1000)
        assert response.status == 200, body[:300]
    conn.close()
    times.sort()
    return statistics.median(times), times[max(int(len(times) * 0.99) - 1, 0)]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=500)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="bench-analytics-"))
    data = folder / "data"
    try:
        subprocess.run([PY, "-m", "toombos_edge", "migrate", "--data-dir", str(data)],
                       check=True, capture_output=True, cwd=ROOT)
        now = int(time.time() * 1000)
        began = time.perf_counter()
        fill(data / "edge.db", args.jobs, now)
        print(f"  filled {args.jobs:,} jobs in {time.perf_counter() - began:.0f} s", flush=True)
        port = free_port()
        proc = start([PY, "-m", "toombos_edge", "serve", "--port", str(port), "--data-dir",
                      str(data), "--access-log", "false", "--log-level", "warning",
                      "--analytics-cache-seconds", "0"], cpu=0)
        try:
            wait_url(f"http://127.0.0.1:{port}/ready", proc, 120)
            key = (data / "admin.key").read_text().strip()
            window = f"start_date={iso(now - 30 * DAY_MS)}&end_date={iso(now)}"
            path = f"/api/v2/analytics/jobs?{window}&granularity=day"
            first = json.loads(_get(port, key, path))
            assert first["total_jobs"] >= args.jobs * 0.99, first["total_jobs"]
            p50, p99 = latency(port, key, path, args.requests)
            hour50, hour99 = latency(port, key, path.replace("=day", "=hour"), args.requests)
        finally:
            stop(proc)
        verdict = "meets" if p99 < GOAL_P99_MS else "misses"
        print(f"GET /api/v2/analytics/jobs, 30 days over {args.jobs:,} jobs: p50 {p50:.2f} ms, "
              f"p99 {p99:.2f} ms ({verdict} the goal p99 < {GOAL_P99_MS:.0f} ms; hour points: "
              f"p50 {hour50:.2f} ms, p99 {hour99:.2f} ms); {args.requests} sequential "
              "requests on one keep-alive connection, answer cache off, server on one CPU",
              flush=True)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _get(port: int, key: str, path: str) -> bytes:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    conn.request("GET", path, headers={"Authorization": f"Bearer {key}"})
    body = conn.getresponse().read()
    conn.close()
    return body


if __name__ == "__main__":
    main()
