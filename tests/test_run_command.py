"""The README's run command on a fresh copy: a new venv, an install, then /health is 200."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
import urllib.error
from pathlib import Path

import pytest
from conftest import clean_env, free_port, http
from support import eventually

ROOT = Path(__file__).resolve().parent.parent
#: The issue's budget is 30 s from a cold start (measured by hand: bench/README.md); the
#: test allows more because CI shares two cores with whatever else is running.
DEADLINE = 90.0


def fresh_copy(target: Path) -> Path:
    """The tracked files of this working tree (uncommitted edits included), nothing else."""
    listed = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = ROOT / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    return target


@pytest.mark.slow
def test_make_run_serves_health_from_a_fresh_copy(tmp_path: Path) -> None:
    copy = fresh_copy(tmp_path / "clone")
    assert not (copy / ".venv").exists() and not (copy / "data").exists()
    port = free_port()  # the only change from the README: port 8000 may be taken here
    env = {**clean_env(), "TOOMBOS_PORT": str(port)}
    log = (tmp_path / "make-run.log").open("wb")
    began = time.monotonic()
    proc = subprocess.Popen(["make", "run"], cwd=copy, env=env, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    try:
        elapsed = wait_for_health(f"http://127.0.0.1:{port}/health", proc, began)
        print(f"make run on a fresh copy: /health 200 after {elapsed:.1f} s")
        assert (copy / "data" / "edge.db").exists() and (copy / "data" / "admin.key").exists()
    finally:
        stop_group(proc)
        log.close()


def stop_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM make and the server; SIGKILL what a loaded machine has not stopped in 20 s."""
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)


def wait_for_health(url: str, proc: subprocess.Popen[bytes], began: float) -> float:
    def healthy() -> bool:
        assert proc.poll() is None, "make run exited"
        return http("GET", url, timeout=1)[0] == 200

    eventually(healthy, DEADLINE - (time.monotonic() - began), "/health to answer 200",
               every=0.1, ignore=(urllib.error.URLError, ConnectionError))
    return time.monotonic() - began
