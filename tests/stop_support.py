"""A third-party-style plugin of slow job kinds, for tests that stop real servers.

The module and a ``.dist-info`` with a ``toombos_edge.handlers`` entry point go on the
server's PYTHONPATH only. Each attempt appends ``start|end job_id attempt wall_time`` to
the ledger named in its params, so a test sees what ran, when, and how often.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import aiohttp

PLUGIN = '''
import asyncio, os, time
from toombos_edge.jobs.kinds import JobKind, Outcome

def note(ctx, what):
    line = f"{what} {ctx.job.id} {ctx.job.attempts} {time.time():.6f}\\n".encode()
    fd = os.open(ctx.params["ledger"], os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)

async def sleep(ctx):
    note(ctx, "start")
    await asyncio.sleep(float(ctx.params["seconds"]))
    note(ctx, "end")
    return Outcome({"sleep": {"status": "success"}})

async def block(ctx):
    """Blocks the event loop itself (a handler that calls blocking code by mistake)."""
    note(ctx, "start")
    time.sleep(float(ctx.params["seconds"]))
    return Outcome({"block": {"status": "success"}})

async def stubborn(ctx):
    """Ignores every cancel: a resource that will not close."""
    note(ctx, "start")
    while True:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            continue

def kinds():
    return [JobKind("sleep", sleep), JobKind("block", block), JobKind("stubborn", stubborn)]
'''
ENTRY_POINTS = "[toombos_edge.handlers]\nslow = slow_plugin:kinds\n"


def make_plugin(folder: Path) -> dict[str, str]:
    """Write the plugin; returns the environment a server needs to load it."""
    folder.mkdir(exist_ok=True)
    (folder / "slow_plugin.py").write_text(PLUGIN)
    info = folder / "slow_plugin-1.0.dist-info"
    info.mkdir(exist_ok=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: slow-plugin\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(ENTRY_POINTS)
    return {"PYTHONPATH": str(folder)}


@dataclass(frozen=True)
class Entry:
    what: str
    job_id: str
    attempt: int
    at: float


def ledger(path: Path) -> list[Entry]:
    text = path.read_text() if path.exists() else ""
    entries = []
    for line in text.splitlines():
        what, job_id, attempt, at = line.split()
        entries.append(Entry(what, job_id, int(attempt), float(at)))
    return entries


def starts(path: Path) -> Counter[str]:
    return Counter(e.job_id for e in ledger(path) if e.what == "start")


async def submit(session: aiohttp.ClientSession, base: str, key: str, kind: str,
                 **params: object) -> str:
    async with session.post(base + "/api/jobs", json={"kind": kind, "params": params},
                            headers={"Authorization": f"Bearer {key}"}) as response:
        assert response.status == 202, await response.text()
        job_id: str = (await response.json())["job_id"]
        return job_id


async def until_closed(ws: aiohttp.ClientWebSocketResponse) -> tuple[list[str], int | None]:
    """Message types received until the server closed, and its close code."""
    types = []
    async with asyncio.timeout(20):
        while True:
            message = await ws.receive()
            if message.type is aiohttp.WSMsgType.TEXT:
                types.append(message.json()["type"])
            elif message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED,
                                  aiohttp.WSMsgType.ERROR):
                return types, ws.close_code
