"""Requests/s and p99 of the real server against a FastAPI + uvicorn peer, same data.

Both serve `/health` (same checks, same one-second cache) and the issue's authenticated
list of 50 rows of about 10 columns from a 100k-row table in the same SQLite file:
`GET /api/jobs?limit=50&fields=<10 keys>`, with byte-for-byte the same JSON (checked before
measuring). Each runs as its users run it: the server in its default configuration (every
middleware, the access log on, JSON lines to a file), uvicorn with its default access log.
A second copy of the server with `--access-log false` answers `/health` in the same rounds,
to state what the access log costs. All servers are pinned to CPU 0, wrk to CPU 1; rounds
alternate which goes first. Prints one line per round and one summary line per figure.

Usage: python -m bench.http_rps [--rounds 10] [--seconds 5] [--connections 50] [--full]
(--full also measures the whole job objects, 21 keys with 4 JSON columns decoded per row;
--workload keys the API keys list of before the engine).
Goals (issue 2): >= 2.0x the peer on /health, >= 1.5x on the list; (issue 13) the access
log costs under 10% of /health's requests/s.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sqlite3
import statistics
import subprocess
import tempfile
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench.common import PY, ROOT, free_port, spread, start, stop, wait_url

ROWS = 100_000
GOALS = {"health": 2.0, "list": 1.5}  # the full-object list ("full") has no goal
ACCESS_LOG_COST_GOAL = 0.10
# The "about 10 columns": what a dashboard's jobs table shows.
LIGHT_FIELDS = ("job_id,kind,status,priority,document_id,attempts,created_at,updated_at,"
                "started_at,completed_at")


#: The peer's versions, pinned so that a figure can be compared with the next run's
#: (aiosqlite: the peer's SQL runs on it, as a FastAPI app's would).
PEER = {"fastapi": "0.165.0", "uvicorn": "0.55.0", "httptools": "0.9.0", "aiosqlite": "0.22.1"}


def ensure_tools() -> None:
    """The pinned peer (FastAPI, uvicorn, httptools, aiosqlite) here; wrk from Debian."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        same = all(version(name) == pinned for name, pinned in PEER.items())
    except PackageNotFoundError:
        same = False
    if not same:
        subprocess.run([PY, "-m", "pip", "install", "-q", "--disable-pip-version-check",
                        *(f"{name}=={pinned}" for name, pinned in PEER.items())],
                       check=True, timeout=300)
    if shutil.which("wrk") is None:
        subprocess.run(["apt-get", "update", "-qq"], check=True)
        subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=True)


@dataclass(frozen=True)
class Workload:
    """The list route and how to fill its table with ROWS rows."""

    name: str
    path: str
    seed: Callable[[sqlite3.Connection], None]
    full: str | None = None  #: the same list with whole objects (--full)


def seed_keys(conn: sqlite3.Connection) -> None:
    from toombos_edge.ids import new_id, now_ms

    now = now_ms()
    rows = (
        (new_id("key"), f"bench key {n}", "viewer", n.to_bytes(32, "big"), now, now, now)
        for n in range(ROWS)
    )
    # Revoked: the server keeps active keys in memory, and this table is only for listing.
    conn.executemany(
        "INSERT INTO api_keys (id, name, role, secret_hash, created_at, last_used_at, "
        "revoked_at) VALUES (?, ?, ?, ?, ?, ?, ?)", rows)


def seed_jobs(conn: sqlite3.Connection) -> None:
    """ROWS finished jobs through the engine's own insert (its schema, its triggers)."""
    from toombos_edge.ids import new_id, now_ms
    from toombos_edge.records.job import Job, JobStatus
    from toombos_edge.store.sqlite import jobs as store

    now = now_ms()
    ended = [JobStatus.completed] * 8 + [JobStatus.failed, JobStatus.cancelled]
    channels = [["email", "website"], ["social_twitter"], ["email"]]

    def job(n: int) -> tuple[Job, int]:
        created = now - (ROWS - n) * 1000
        return Job(
            id=new_id("job"), kind="generate", status=ended[n % 10], created_at=created,
            updated_at=created + 900, document_id=f"doc_{n // 4:08d}",
            channels=channels[n % 3], params={"document_id": f"doc_{n // 4:08d}"},
            correlation_id=f"corr-{n:08d}", metadata={"source": "bench"},
            started_at=created + 100, completed_at=created + 900, attempts=1,
        ), created

    conn.execute("BEGIN")
    for first in range(0, ROWS, 10_000):
        store.insert(conn, (job(n) for n in range(first, min(ROWS, first + 10_000))))
    conn.execute("COMMIT")


WORKLOADS = {
    # The jobs list of the engine, cut to 10 keys (jobs, total, page, page_size …).
    "jobs": Workload("jobs", f"/api/jobs?limit=50&fields={LIGHT_FIELDS}", seed_jobs,
                     full="/api/jobs?limit=50"),
    # Before the engine existed: the API keys list, paged the same way.
    "keys": Workload("keys", "/admin/keys?limit=50", seed_keys),
}


def cli(data_dir: Path, *args: str) -> str:
    done = subprocess.run([PY, "-m", "toombos_edge", *args, "--data-dir", str(data_dir)],
                          capture_output=True, text=True, check=True, cwd=ROOT)
    return done.stdout.strip()


def prepare(data_dir: Path, workload: Workload) -> str:
    """Migrate, make an admin key, seed the table; returns the key."""
    cli(data_dir, "migrate")
    secret = cli(data_dir, "keys", "create", "--name", "bench", "--role", "admin")
    with sqlite3.connect(data_dir / "edge.db", isolation_level=None) as conn:
        workload.seed(conn)
    return secret


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wrk(url: str, key: str, seconds: int, connections: int, pid: int) -> tuple[float, ...]:
    """(requests/s, p99 ms, server CPU µs per request) from one wrk run on CPU 1.

    CPU per request is the server's own CPU time over the requests it answered: unlike
    requests/s it hardly moves when other processes share the machine.
    """
    command = ["taskset", "-c", "1", "wrk", "-t1", f"-c{connections}", f"-d{seconds}s",
               "--latency", "-H", f"Authorization: Bearer {key}", url]
    cpu_before = cpu_seconds(pid)
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    cpu = cpu_seconds(pid) - cpu_before
    if "Non-2xx" in out:
        raise RuntimeError(f"non-2xx answers from {url}:\n{out}")
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    value, unit = re.search(r"99%\s+([\d.]+)(us|ms|s)", out).groups()  # type: ignore[union-attr]
    count = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    return rps, float(value) * _UNITS[unit], cpu / count * 1e6


def get_bytes(url: str, key: str) -> bytes:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {key}"})
    with urllib.request.urlopen(request, timeout=5) as response:
        body: bytes = response.read()
        return body


def get(url: str, key: str) -> object:
    return json.loads(get_bytes(url, key))


def same_answers(ours: str, peer: str, key: str, lists: list[str]) -> None:
    """Both answer each list with byte-for-byte the same JSON, /health with the same shape."""
    for path in lists:
        mine_list, their_list = get_bytes(ours + path, key), get_bytes(peer + path, key)
        assert mine_list == their_list, f"{path}: the answers differ"
        body = json.loads(mine_list)
        rows = body.get("jobs", body.get("keys"))
        assert len(rows) == 50, f"{path}: {len(rows)} rows, not 50"
        print(f"{path}: same {len(mine_list)} bytes from both, {len(rows[0])} keys per row")
    mine, theirs = get(ours + "/health", key), get(peer + "/health", key)
    assert isinstance(mine, dict) and isinstance(theirs, dict)
    assert set(mine) == set(theirs) and set(mine["checks"]) == set(theirs["checks"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--workload", choices=sorted(WORKLOADS), default="jobs")
    parser.add_argument("--full", action="store_true",
                        help="also measure the list with whole job objects")
    args = parser.parse_args()
    ensure_tools()
    workload = WORKLOADS[args.workload]
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        key = prepare(data, workload)
        run(data, key, workload, args)


def run(data: Path, key: str, workload: Workload, args: argparse.Namespace) -> None:
    ports = {who: free_port() for who in ("ours", "quiet", "peer")}
    serve = [PY, "-m", "toombos_edge", "serve", "--data-dir", str(data), "--port"]
    procs = {
        "ours": start([*serve, str(ports["ours"])], cpu=0, log=data.parent / "ours.log"),
        "quiet": start([*serve, str(ports["quiet"]), "--access-log", "false"], cpu=0,
                       log=data.parent / "quiet.log"),
        "peer": start([PY, str(ROOT / "bench" / "peers" / "fastapi_peer.py"),
                       str(ports["peer"]), str(data)], cpu=0, log=data.parent / "peer.log"),
    }
    try:
        bases = {who: f"http://127.0.0.1:{port}" for who, port in ports.items()}
        for who, proc in procs.items():
            wait_url(bases[who] + "/ready", proc)
        paths = {"health": "/health", "list": workload.path}
        if args.full and workload.full:
            paths["full"] = workload.full
        lists = [path for route, path in paths.items() if route != "health"]
        same_answers(bases["ours"], bases["peer"], key, lists)
        pids = {who: proc.pid for who, proc in procs.items()}
        for who, base in bases.items():  # warm-up
            for path in paths.values():
                wrk(base + path, key, 1, args.connections, pids[who])
        measure(bases, pids, paths, key, args)
        lines = (data.parent / "ours.log").read_bytes().count(b'"toombos_edge.access"')
        print(f"access log lines written by the default server: {lines}")
    finally:
        for proc in procs.values():
            stop(proc)


def contestants(route: str, n: int) -> list[str]:
    """Who runs this round on this route, in which order (alternating between rounds)."""
    who = ["ours", "peer", "quiet"] if route == "health" else ["ours", "peer"]
    return who if n % 2 == 0 else who[::-1]


def measure(bases: dict[str, str], pids: dict[str, int], paths: dict[str, str], key: str,
            args: argparse.Namespace) -> None:
    rates: dict[tuple[str, str], list[float]] = {}
    cpus: dict[tuple[str, str], list[float]] = {}
    print(f"workload: {', '.join(paths.values())} over {ROWS} rows; {args.seconds}s x "
          f"{args.connections} connections per run; load average {os.getloadavg()[0]:.2f}")
    print(f"{'round':>5} {'route':<7} {'who':<6} {'rps':>8} {'p99':>9} {'cpu/req':>9}")
    for n in range(args.rounds):
        for route, path in paths.items():
            for who in contestants(route, n):
                rps, p99, cpu = wrk(bases[who] + path, key, args.seconds, args.connections,
                                    pids[who])
                rates.setdefault((route, who), []).append(rps)
                cpus.setdefault((route, who), []).append(cpu)
                print(f"{n + 1:>5} {route:<7} {who:<6} {rps:>8.0f} {p99:>7.2f}ms "
                      f"{cpu:>7.0f}us", flush=True)
    print(f"\nload average at the end {os.getloadavg()[0]:.2f}")
    summarize(rates, cpus, paths, args)


def judge(ratios: list[float], goal: float | None) -> str:
    if goal is None:
        return "no goal"
    if min(ratios) >= goal:
        return f"goal >= {goal}x: met in every round"
    if statistics.median(ratios) >= goal:
        return f"goal >= {goal}x: met in the median, not in every round"
    return f"goal >= {goal}x: MISSED"


def summarize(rates: dict[tuple[str, str], list[float]], cpus: dict[tuple[str, str], list[float]],
              paths: dict[str, str], args: argparse.Namespace) -> None:
    peer = ", ".join(f"{name} {pinned}" for name, pinned in PEER.items())
    settings = (f"server: default configuration (access log on); FastAPI: uvicorn defaults "
                f"(access log on; {peer}); {args.connections} connections, {args.seconds}s x "
                f"{args.rounds} rounds, servers on CPU 0, wrk on CPU 1")
    print(f"settings: {settings}")
    for route in paths:
        ours, peer = rates[(route, "ours")], rates[(route, "peer")]
        ratios = [o / p for o, p in zip(ours, peer, strict=True)]
        cpu_ratios = [p / o for o, p in zip(cpus[(route, "ours")], cpus[(route, "peer")],
                                            strict=True)]
        verdict = judge(ratios, GOALS.get(route))
        print(f"SUMMARY {route:<6} ours {statistics.median(ours):,.0f} rps | FastAPI "
              f"{statistics.median(peer):,.0f} rps | ratio {spread(ratios)} (per round "
              f"{', '.join(f'{v:.2f}' for v in ratios)}) | CPU/request ratio "
              f"{spread(cpu_ratios)} | {verdict}")
    on, off = rates[("health", "ours")], rates[("health", "quiet")]
    costs = [1 - a / b for a, b in zip(on, off, strict=True)]
    cost = statistics.median(costs)
    print(f"SUMMARY access log on /health: on {statistics.median(on):,.0f} rps | off "
          f"{statistics.median(off):,.0f} rps | cost {cost:.1%} (per round "
          f"{', '.join(f'{c:.1%}' for c in costs)}) | goal < {ACCESS_LOG_COST_GOAL:.0%}: "
          f"{'met' if cost < ACCESS_LOG_COST_GOAL else 'MISSED'}")


if __name__ == "__main__":
    main()
