"""kill -9 a real server half way through 1,000 jobs, start it again: nothing is lost.

The jobs' kind comes from a third-party-style plugin: a module and a ``.dist-info`` with a
``toombos_edge.handlers`` entry point, on the server's PYTHONPATH only. Its handler appends
``job_id attempt`` to a ledger file, so the ledger shows how often each job really ran.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

JOBS = 1000
WORKERS = 8
PLUGIN = '''
import asyncio, os
from toombos_edge.jobs.kinds import JobKind, Outcome

async def run(ctx):
    line = f"{ctx.job.id} {ctx.job.attempts}\\n".encode()
    fd = os.open(ctx.params["ledger"], os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)
    await asyncio.sleep(0.01)
    return Outcome({"ledger": {"status": "success"}})

def kinds():
    return [JobKind("ledger", run)]
'''
ENTRY_POINTS = "[toombos_edge.handlers]\nledger = ledger_plugin:kinds\n"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def make_plugin(folder: Path) -> Path:
    folder.mkdir()
    (folder / "ledger_plugin.py").write_text(PLUGIN)
    info = folder / "ledger_plugin-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: ledger-plugin\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(ENTRY_POINTS)
    return folder


class Server:
    def __init__(self, data_dir: Path, plugin_dir: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {key: value for key, value in os.environ.items()
               if not key.startswith("TOOMBOS_")}
        env.update(PYTHONPATH=str(plugin_dir), TOOMBOS_JOB_WORKERS=str(WORKERS),
                   TOOMBOS_ACCESS_LOG="false", TOOMBOS_LOG_LEVEL="warning")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "toombos_edge", "serve", "--port", str(self.port),
             "--data-dir", str(data_dir)],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )

    async def ready(self, session: aiohttp.ClientSession) -> None:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            assert self.process.poll() is None, "the server exited"
            try:
                async with session.get(self.url + "/ready") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientConnectionError:
                pass
            await asyncio.sleep(0.05)
        raise AssertionError("the server did not become ready")

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(20)


@pytest.fixture
def servers() -> Iterator[list[Server]]:
    started: list[Server] = []
    yield started
    for server in started:
        if server.process.poll() is None:
            server.process.kill()
            server.process.wait(10)


async def wait_for(condition: Any, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not await condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


def ledger_runs(ledger: Path) -> Counter[str]:
    text = ledger.read_text() if ledger.exists() else ""
    return Counter(line.split()[0] for line in text.splitlines() if line)


@pytest.mark.slow
async def test_kill_9_half_way_loses_nothing(tmp_path: Path, servers: list[Server]) -> None:
    data, ledger = tmp_path / "data", tmp_path / "ledger.txt"
    plugin = make_plugin(tmp_path / "plugin")
    async with aiohttp.ClientSession() as session:
        first = Server(data, plugin)
        servers.append(first)
        await first.ready(session)
        headers = {"Authorization": "Bearer " + (data / "admin.key").read_text().strip()}

        async def submit(n: int) -> str:
            body = {"kind": "ledger", "params": {"ledger": str(ledger), "n": n}}
            async with session.post(first.url + "/api/jobs", json=body,
                                    headers=headers) as response:
                assert response.status == 202
                job_id: str = (await response.json())["job_id"]
                return job_id

        acknowledged: set[str] = set()
        for start in range(0, JOBS, 100):
            acknowledged |= set(await asyncio.gather(*(submit(n) for n in range(start,
                                                                              start + 100))))

        async def half_done() -> bool:
            return sum(ledger_runs(ledger).values()) >= JOBS // 2

        await wait_for(half_done, 60, "half of the jobs to run")
        first.kill()

        with sqlite3.connect(data / "edge.db") as conn:
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            held = {row[0] for row in conn.execute(
                "SELECT id FROM jobs WHERE status = 'in_progress'")}
            claimed = {row[0] for row in conn.execute(
                "SELECT id FROM jobs WHERE status = 'pending' AND lease_until IS NOT NULL")}
            stored = {row[0] for row in conn.execute("SELECT id FROM jobs")}
        assert stored == acknowledged  # every acknowledged job is in the file
        assert len(held) <= WORKERS  # in_progress means a worker runs it
        assert not claimed  # nothing is reserved ahead of a free worker
        ran_before = ledger_runs(ledger)
        assert 0 < len(ran_before) < JOBS

        second = Server(data, plugin)
        servers.append(second)
        await second.ready(session)

        async def all_ended() -> bool:
            async with session.get(second.url + "/api/jobs?status=pending,in_progress&limit=1",
                                   headers=headers) as response:
                body = await response.json()
                return body["total"] == 0

        await wait_for(all_ended, 60, "every job to end")
        second.stop()
        assert second.process.returncode == 0

    with sqlite3.connect(data / "edge.db") as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        statuses = Counter(row[0] for row in conn.execute("SELECT status FROM jobs"))
        attempts = dict(conn.execute("SELECT id, attempts FROM jobs").fetchall())
        interrupted = {row[0] for row in conn.execute(
            "SELECT id FROM jobs WHERE errors LIKE '%interrupted%'")}
    assert statuses == {"completed": JOBS}
    runs = ledger_runs(ledger)
    assert set(runs) == acknowledged  # each ran at least once
    extra = {job_id: count - 1 for job_id, count in runs.items() if count > 1}
    assert set(extra) <= held  # only jobs held at the kill ran again …
    assert all(count == 1 for count in extra.values())  # … and at most once more
    assert interrupted <= held  # only a job that had started is charged for the kill
    for job_id, ran in runs.items():  # an attempt is counted when, and only when, it ran
        # (a job started at the kill may have been charged just before its handler wrote)
        assert ran <= attempts[job_id] <= ran + (job_id in held)
