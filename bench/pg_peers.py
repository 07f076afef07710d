"""The PostgreSQL peers' venvs: each peer at its pinned version in a venv of its own (so
that their drivers and ours never share an environment), made and filled from PyPI by the
bench when missing or at another version; the script they run is bench/peers/pg_peer.py.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
VENVS = ROOT / "bench" / "out" / "venvs"
SCRIPT = ROOT / "bench" / "peers" / "pg_peer.py"

#: Every package a peer's venv gets, pinned. uvloop at our version in both: every side
#: runs on the same event loop (PgQueuer depends on it anyway; procrastinate runs on it).
PEERS: dict[str, dict[str, str]] = {
    "pgqueuer": {"pgqueuer": "1.6.0", "asyncpg": "0.32.0", "uvloop": "0.23.0"},
    "procrastinate": {"procrastinate": "3.10.0", "psycopg": "3.3.9",
                      "psycopg-binary": "3.3.9", "psycopg-pool": "3.3.3",
                      "uvloop": "0.23.0"},
}

#: What each side keeps per job once it ran (said in the output and in bench/README.md).
RECORDS = {
    "ours": "the job row kept (status, attempts, progress, results, errors, lease, times), "
            "the per-status counters and the hourly tallies updated in the same "
            "transactions, an event per change published on the bus",
    "pgqueuer": "the queue row deleted when it ends; a row per status change in "
                "pgqueuer_log (queued, picked, successful), folded into "
                "pgqueuer_statistics later; no result kept",
    "procrastinate": "the job row kept (status, attempts) and a row per event in "
                     "procrastinate_events (deferred, started, succeeded); no result kept",
}


def python(peer: str) -> Path:
    """The peer's interpreter, its venv made and filled first when needed."""
    venv = VENVS / peer
    stamp = venv / "pinned.json"
    wanted = PEERS[peer]
    if stamp.exists() and json.loads(stamp.read_text()) == wanted:
        return venv / "bin" / "python"
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
    subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q",
                    "--disable-pip-version-check",
                    *(f"{name}=={version}" for name, version in wanted.items())],
                   check=True, timeout=600, capture_output=True)
    stamp.write_text(json.dumps(wanted))
    return venv / "bin" / "python"


def run(peer: str, url: str, jobs: int, workers: int, command: list[str]) -> dict[str, Any]:
    """One measurement of ``peer``; ``command`` wraps the interpreter (taskset)."""
    out = subprocess.run([*command, str(python(peer)), str(SCRIPT), peer, url, str(jobs),
                          str(workers)], check=True, capture_output=True, text=True,
                         cwd=ROOT, timeout=900)
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    if result["version"] != PEERS[peer][peer]:
        raise RuntimeError(f"{peer} {result['version']} ran, not {PEERS[peer][peer]}")
    return result
