"""A job answered 202 is on stable storage first: the WAL is fsynced before the answer.

The proof watches the real server's system calls with strace (from Debian; installed with
apt-get when missing). With ``db_synchronous=full`` every write to the WAL before the 202
is followed by an fsync/fdatasync of the WAL that finishes before the 202's bytes go to the
client's socket; full is the default, so the server runs without the setting. With
``normal`` it is not (the same check fails), which shows the check can tell the two apart.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import ServerProcess, http

TRACED = "fsync,fdatasync,write,pwrite64,writev,sendto,sendmsg"
SENDS = frozenset({"write", "writev", "sendto", "sendmsg"})
# "PID SECONDS.MICROS call(FD<what>, …" and the second half of a call another thread cut.
_CALL = re.compile(r"^(\d+)\s+(\d+\.\d+) (\w+)\((\d+)<([^>]*)>(.*)$")
_RESUMED = re.compile(r"^(\d+)\s+(\d+\.\d+) <\.\.\. (\w+) resumed>")


@pytest.fixture(scope="module")
def strace() -> str:
    """strace's path; installed from Debian when missing. Never skipped: a failure says why."""
    found = shutil.which("strace")
    if found:
        return found
    for command in (["apt-get", "install", "-y", "-q", "strace"], ["apt-get", "update", "-q"],
                    ["apt-get", "install", "-y", "-q", "strace"]):
        subprocess.run(command, capture_output=True, timeout=300, check=False)
        found = shutil.which("strace")
        if found:
            return found
    pytest.fail("strace is needed to watch the server's system calls and could not be "
                "installed with apt-get (install Debian's strace package and run again)")


@dataclass(frozen=True, slots=True)
class Call:
    pid: int
    began: float
    ended: float
    name: str
    target: str  #: what the fd is (strace -y): a path, or TCP:[…] for a socket
    text: str


def parse(trace: str) -> list[Call]:
    """The traced calls in the order they began, each with the time it returned."""
    calls: list[Call] = []
    open_calls: dict[tuple[int, str], int] = {}  # (pid, call) cut by another thread → index
    for line in trace.splitlines():
        if match := _RESUMED.match(line):
            index = open_calls.pop((int(match[1]), match[3]), None)
            if index is not None:
                old = calls[index]
                calls[index] = Call(old.pid, old.began, float(match[2]), old.name, old.target,
                                    old.text)
        elif match := _CALL.match(line):
            pid, at = int(match[1]), float(match[2])
            calls.append(Call(pid, at, at, match[3], match[5], match[6]))
            if match[6].endswith("<unfinished ...>"):
                open_calls[(pid, match[3])] = len(calls) - 1
    return calls


def synced_before_answer(calls: list[Call], job_id: str) -> tuple[bool, str]:
    """Whether every WAL write made before the 202 (the only one) was fsynced before it."""
    answer = next(c for c in calls if c.name in SENDS and "HTTP/1.1 202" in c.text
                  and c.target.startswith(("socket:", "TCP:")))
    before = [c for c in calls if c.began < answer.began and c.target.endswith("edge.db-wal")]
    writes = [c for c in before if c.name in {"write", "pwrite64"}]
    assert writes, "the job's commit wrote nothing to the WAL before the answer"
    last_write = max(c.ended for c in writes)
    syncs = [c for c in before if c.name in {"fsync", "fdatasync"}
             and c.began >= last_write and c.ended <= answer.began]
    story = (f"last WAL write returned at {last_write:.6f}, the 202 for {job_id} began at "
             f"{answer.began:.6f}, WAL syncs between: {[(c.began, c.ended) for c in syncs]}")
    return bool(syncs), story


@pytest.mark.parametrize(("mode", "durable"), [(None, True), ("normal", False)])
def test_the_wal_is_fsynced_before_the_202_is_written(
    server_process: Callable[..., ServerProcess], tmp_path: Path, strace: str,
    mode: str | None, durable: bool,
) -> None:
    """The default (full) is durable; normal, the same check, is not."""
    trace_file = tmp_path / "strace.txt"
    wrapper = (strace, "-f", "-ttt", "-y", "-s", "40", "-e", f"trace={TRACED}",
               "-o", str(trace_file))
    flags = ("--db-synchronous", mode) if mode else ()
    server = server_process("--access-log", "false", *flags, wrapper=wrapper)
    status, job = http("POST", server.base + "/api/jobs", key=server.admin_key(),
                       body={"kind": "ingest", "params": {"text": "durable", "title": "t"}})
    assert status == 202, job
    server.stop()
    synced, story = synced_before_answer(parse(trace_file.read_text()), job["job_id"])
    assert synced is durable, story
