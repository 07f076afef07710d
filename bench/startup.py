"""Start-up to /ready and idle RSS of the real server, beside bare aiohttp on uvloop.

Each round starts both as subprocesses (alternating which goes first), measures the time
from spawn to the first 200 from /ready, then the resident memory after a /health request
and a short idle. The server is measured on a fresh data dir (first start: migrations and
the admin key) and on a restart of the same data dir.

Usage: python bench/startup.py [--rounds 5]
Budgets (issue 2): ready under 1 s, idle RSS under 60 MB.
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

from common import PY, ROOT, free_port, rss_mb, spread, start, stop, wait_url

IDLE_SECONDS = 0.5


def measure(command: list[str], port: int, probe: str) -> tuple[float, float]:
    proc = start(command, cpu=0)
    try:
        ready = wait_url(f"http://127.0.0.1:{port}/ready", proc)
        if probe:
            urllib.request.urlopen(f"http://127.0.0.1:{port}{probe}", timeout=5).read()
        time.sleep(IDLE_SECONDS)  # idle: let start-up garbage settle before reading RSS
        return ready, rss_mb(proc.pid)
    finally:
        stop(proc)


def server(data_dir: Path, port: int) -> list[str]:
    return [PY, "-m", "toombos_edge", "serve", "--port", str(port), "--data-dir", str(data_dir),
            "--access-log", "false"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    rounds = parser.parse_args().rounds
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
                    figures = measure([PY, bare_script, str(port)], port, "")
                else:
                    figures = measure(server(data, port), port, "/health")
                rows[what].append(figures)
                label = {"bare": "bare aiohttp+uvloop", "first": "toombos-edge first",
                         "restart": "toombos-edge restart"}[what]
                print(f"{n + 1:>5} {label:<22} {figures[0]:>8.3f} {figures[1]:>7.1f}")
    print()
    for what in ("bare", "first", "restart"):
        ready = [r[0] for r in rows[what]]
        rss = [r[1] for r in rows[what]]
        print(f"{what:<8} ready s {spread(ready)}   RSS MB {spread(rss)}")
    worst_ready = max(r[0] for r in rows["first"] + rows["restart"])
    worst_rss = max(r[1] for r in rows["first"] + rows["restart"])
    ratios = [a[0] / b[0] for a, b in zip(rows["restart"], rows["bare"], strict=True)]
    print(f"per-round ready ratio restart/bare: {', '.join(f'{r:.2f}' for r in ratios)}")
    verdict = "OK" if worst_ready < 1.0 and worst_rss < 60 else "OVER BUDGET"
    print(f"worst: ready {worst_ready:.3f} s (budget 1 s), RSS {worst_rss:.1f} MB (budget 60 MB)"
          f" -> {verdict}")


if __name__ == "__main__":
    main()
