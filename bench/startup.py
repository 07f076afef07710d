"""Start-up to /ready and idle RSS of the real server, beside bare aiohttp on uvloop.

Each round starts both as subprocesses (alternating which goes first), measures the time
from spawn to the first 200 from /ready, then the resident memory after a /health request
and 10 s idle (what a server that has settled holds, not a snapshot of start-up). The
server runs in its default configuration (access log on, JSON logs) and is measured on a
fresh data dir (first start: migrations and the admin key) and on a restart of the same
data dir.

Usage: python -m bench.startup [--rounds 5] [--idle 10]
Budgets (issue 2): ready under 1 s, idle RSS under 60 MB.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

from bench.common import PY, ROOT, free_port, rss_mb, spread, start, stop, wait_url

READY_BUDGET_S, RSS_BUDGET_MB = 1.0, 60.0


def measure(command: list[str], port: int, probe: str, idle: float) -> tuple[float, float]:
    proc = start(command, cpu=0)
    try:
        ready = wait_url(f"http://127.0.0.1:{port}/ready", proc)
        if probe:
            urllib.request.urlopen(f"http://127.0.0.1:{port}{probe}", timeout=5).read()
        time.sleep(idle)  # idle: nothing to wait for but time; RSS is read after it
        return ready, rss_mb(proc.pid)
    finally:
        stop(proc)


def server(data_dir: Path, port: int) -> list[str]:
    return [PY, "-m", "toombos_edge", "serve", "--port", str(port), "--data-dir", str(data_dir)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--idle", type=float, default=10.0, help="seconds idle before RSS")
    args = parser.parse_args()
    rounds, idle = args.rounds, args.idle
    # "Once installed", as `make run` leaves it: the package compiled to bytecode, also where
    # writing bytecode on import is off (PYTHONDONTWRITEBYTECODE, as on this machine).
    subprocess.run([PY, "-m", "compileall", "-q", str(ROOT / "toombos_edge")], check=True)
    rows: dict[str, list[tuple[float, float]]] = {"bare": [], "first": [], "restart": []}
    bare_script = str(ROOT / "bench" / "peers" / "bare_aiohttp.py")
    print(f"{'round':>5} {'what':<22} {'ready s':>8} {'RSS MB':>7}")
    for n in range(rounds):
        with tempfile.TemporaryDirectory() as tmp:
            data = Path(tmp) / "data"
            order = ["bare", "first", "restart"] if n % 2 == 0 else ["first", "restart", "bare"]
            for what in order:
                port = free_port()
                if what == "bare":
                    figures = measure([PY, bare_script, str(port)], port, "", idle)
                else:
                    figures = measure(server(data, port), port, "/health", idle)
                rows[what].append(figures)
                label = {"bare": "bare aiohttp+uvloop", "first": "toombos-edge first",
                         "restart": "toombos-edge restart"}[what]
                print(f"{n + 1:>5} {label:<22} {figures[0]:>8.3f} {figures[1]:>7.1f}")
    summarize(rows, rounds, idle)


def summarize(rows: dict[str, list[tuple[float, float]]], rounds: int, idle: float) -> None:
    settings = (f"server: default configuration (access log on); bare aiohttp on uvloop; "
                f"{rounds} rounds, RSS after {idle:g} s idle, both on CPU 0")
    print(f"\nsettings: {settings}")
    bare_ready = statistics.median(r[0] for r in rows["bare"])
    bare_rss = statistics.median(r[1] for r in rows["bare"])
    for what in ("first", "restart"):
        ready = [r[0] for r in rows[what]]
        rss = [r[1] for r in rows[what]]
        print(f"SUMMARY start {what:<7} ready {spread(ready)} s | bare {bare_ready:.2f} s | "
              f"ratio {statistics.median(ready) / bare_ready:.2f} | goal < {READY_BUDGET_S:g} s:"
              f" {'met' if max(ready) < READY_BUDGET_S else 'MISSED'} (worst {max(ready):.2f})")
        print(f"SUMMARY rss   {what:<7} {spread(rss)} MB | bare {bare_rss:.1f} MB | ratio "
              f"{statistics.median(rss) / bare_rss:.2f} | goal < {RSS_BUDGET_MB:g} MB: "
              f"{'met' if max(rss) < RSS_BUDGET_MB else 'MISSED'} (worst {max(rss):.1f})")


if __name__ == "__main__":
    main()
