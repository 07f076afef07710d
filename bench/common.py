"""What the benches share: free ports, pinned subprocesses, waiting for a URL, RSS."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

#: Benches send far more than a client's fair share on one admin key: its rate limit is
#: raised past anything they send, so that none is refused. The check still runs on every
#: request (bench/ratelimit.py measures what it costs, on against off).
UNTHROTTLED = {"TOOMBOS_RATE_LIMIT_ADMIN": "1000000000"}

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable


def write_plugin(folder: Path, module: str, kind: str, source: str) -> Path:
    """A throwaway package whose ``toombos_edge.handlers`` entry point names ``kind`` in
    ``module`` (``source`` defines ``kinds``); put the returned folder on PYTHONPATH."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{module}.py").write_text(source)
    dist = module.replace("_", "-")
    info = folder / f"{module}-1.0.dist-info"
    info.mkdir(exist_ok=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        f"[toombos_edge.handlers]\n{kind} = {module}:kinds\n")
    return folder


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def pinned(command: list[str], cpu: int | None) -> list[str]:
    """The command under `taskset -c CPU` when taskset exists and a CPU is given."""
    if cpu is None or shutil.which("taskset") is None:
        return command
    return ["taskset", "-c", str(cpu), *command]


def start(
    command: list[str], cpu: int | None = None, log: Path | None = None
) -> subprocess.Popen[bytes]:
    out = open(log, "wb") if log else subprocess.DEVNULL  # noqa: SIM115
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOOMBOS_")}
    env.update(UNTHROTTLED)  # the one setting every bench's server gets (see serverconfig)
    return subprocess.Popen(
        pinned(command, cpu), stdout=out, stderr=subprocess.STDOUT, cwd=ROOT, env=env
    )


def wait_url(url: str, proc: subprocess.Popen[bytes], deadline: float = 30.0) -> float:
    """Seconds from now until the URL answers 200 (polling every 5 ms)."""
    began = time.perf_counter()
    while time.perf_counter() - began < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args} exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return time.perf_counter() - began
        except (urllib.error.URLError, ConnectionError):
            pass
        time.sleep(0.005)
    raise RuntimeError(f"{url} did not answer within {deadline}s")


def rss_mb(pid: int) -> float:
    """Resident memory of a process, from /proc (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def spread(values: list[float]) -> str:
    """median [min-max] of per-round values."""
    ordered = sorted(values)
    return f"{statistics.median(ordered):.2f} [{ordered[0]:.2f}-{ordered[-1]:.2f}]"
