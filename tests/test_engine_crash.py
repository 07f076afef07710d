"""kill -9 a real server half way through 1,000 jobs, start it again: nothing is lost.

The jobs' kind comes from a third-party-style plugin: a module and a ``.dist-info`` with a
``toombos_edge.handlers`` entry point, on the server's PYTHONPATH only. Its handler appends
``job_id attempt`` to a ledger file, so the ledger shows how often each job really ran.
"""

from __future__ import annotations

import asyncio
import signal
import sqlite3
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import aiohttp
import pytest
from conftest import ServerProcess
from support import eventually_async

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


def make_plugin(folder: Path) -> Path:
    folder.mkdir()
    (folder / "ledger_plugin.py").write_text(PLUGIN)
    info = folder / "ledger_plugin-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: ledger-plugin\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(ENTRY_POINTS)
    return folder


def start_server(server_process: Callable[..., ServerProcess], data: Path,
                 plugin: Path) -> ServerProcess:
    """The real server on ``data`` with the ledger plugin importable (blocks until ready)."""
    env = {"PYTHONPATH": str(plugin), "TOOMBOS_JOB_WORKERS": str(WORKERS),
           "TOOMBOS_ACCESS_LOG": "false", "TOOMBOS_LOG_LEVEL": "warning"}
    return server_process(data_dir=data, env=env)


def ledger_runs(ledger: Path) -> Counter[str]:
    text = ledger.read_text() if ledger.exists() else ""
    return Counter(line.split()[0] for line in text.splitlines() if line)


@pytest.mark.slow
async def test_kill_9_half_way_loses_nothing(
    tmp_path: Path, server_process: Callable[..., ServerProcess]
) -> None:
    data, ledger = tmp_path / "data", tmp_path / "ledger.txt"
    plugin = make_plugin(tmp_path / "plugin")
    async with aiohttp.ClientSession() as session:
        first = await asyncio.to_thread(start_server, server_process, data, plugin)
        headers = {"Authorization": "Bearer " + (data / "admin.key").read_text().strip()}

        async def submit(n: int) -> str:
            body = {"kind": "ledger", "params": {"ledger": str(ledger), "n": n}}
            async with session.post(first.base + "/api/jobs", json=body,
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

        await eventually_async(half_done, 60, "half of the jobs to run")
        first.stop(signal.SIGKILL, 10)

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

        second = await asyncio.to_thread(start_server, server_process, data, plugin)

        async def all_ended() -> bool:
            async with session.get(second.base + "/api/jobs?status=pending,in_progress&limit=1",
                                   headers=headers) as response:
                body = await response.json()
                return body["total"] == 0

        await eventually_async(all_ended, 60, "every job to end")
        assert second.stop() == 0

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
