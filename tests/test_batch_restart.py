"""An ordered batch survives kill -9: started again on the same data dir, it completes in order.

A real server process publishes each generated item by email to a real SMTP server in this
test, which holds each message until the test lets it go: so "the second item is running"
is a fact the test sees, not a guess about timing. The server is killed while it is, and
started again on the same data dir.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable
from itertools import pairwise
from pathlib import Path
from typing import Any

import aiohttp
from aiosmtpd.smtp import SMTP, Envelope, Session
from conftest import ServerProcess
from support import eventually_async

NAMES = ["alpha", "bravo", "charlie", "delta"]
TEXT = "Field teams sync their notes offline and the server keeps them in order."


class HeldInbox:
    """Records which item each message is for when it arrives, then holds it until let go."""

    def __init__(self) -> None:
        self.began: list[str] = []
        self.gates = {name: asyncio.Event() for name in NAMES}

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = bytes(envelope.content or b"")
        name = next(n for n in NAMES if f"Sequence {n}".encode() in raw)
        self.began.append(name)
        await self.gates[name].wait()
        return "250 OK"


async def jobs_of(session: aiohttp.ClientSession, base: str, key: str,
                  ids: list[str]) -> list[dict[str, Any]]:
    jobs = []
    for job_id in ids:
        async with session.get(f"{base}/api/jobs/{job_id}",
                               headers={"Authorization": f"Bearer {key}"}) as response:
            assert response.status == 200, await response.text()
            jobs.append(await response.json())
    return jobs


def kill_and_start(server: ServerProcess) -> None:
    assert server.proc is not None
    server.proc.send_signal(signal.SIGKILL)
    server.proc.wait(30)
    server.start()


async def test_kill_9_in_the_middle_of_an_ordered_batch_then_it_completes_in_order(
    tmp_path: Path, server_process: Callable[..., ServerProcess]
) -> None:
    inbox = HeldInbox()
    smtp = await asyncio.get_running_loop().create_server(
        lambda: SMTP(inbox), "127.0.0.1", 0)
    port = smtp.sockets[0].getsockname()[1]
    env = {"TOOMBOS_SMTP_HOST": "127.0.0.1", "TOOMBOS_SMTP_PORT": str(port),
           "TOOMBOS_SMTP_FROM": "news@edge.test", "TOOMBOS_SMTP_TO": "team@edge.test"}
    try:
        # Four workers: the order comes from the stored dependencies, not from a lone worker.
        server = await asyncio.to_thread(server_process, "--job-workers", "4", env=env)
        key = server.admin_key()
        inbox.gates["alpha"].set()
        requests = [{"title": f"Sequence {name}", "text": TEXT, "channels": ["email"],
                     "publish": True} for name in NAMES]
        async with aiohttp.ClientSession() as session:
            async with session.post(
                    f"{server.base}/api/v2/batch/generate",
                    json={"requests": requests, "parallel": False, "fail_fast": True},
                    headers={"Authorization": f"Bearer {key}"}) as response:
                assert response.status == 202, await response.text()
                ids = [job["job_id"] for job in (await response.json())["jobs"]]
            await eventually_async(lambda: "bravo" in inbox.began, 30, "the second item to run")
            assert inbox.began == ["alpha", "bravo"]  # the rest wait, never started

            await asyncio.to_thread(kill_and_start, server)
            for gate in inbox.gates.values():
                gate.set()

            async def all_ended() -> bool:
                jobs = await jobs_of(session, server.base, key, ids)
                return all(job["status"] in ("completed", "failed", "cancelled")
                           for job in jobs)

            await eventually_async(all_ended, 60, "the batch to end")
            jobs = await jobs_of(session, server.base, key, ids)
    finally:
        for gate in inbox.gates.values():
            gate.set()
        smtp.close()
        await smtp.wait_closed()
    assert [job["status"] for job in jobs] == ["completed"] * 4, jobs
    # bravo ran twice (its first attempt died with the process); each item began only
    # after the one before it had ended, before the kill and after it.
    arrivals = [n for i, n in enumerate(inbox.began) if i == 0 or inbox.began[i - 1] != n]
    assert arrivals == NAMES, inbox.began
    assert [job["attempts"] for job in jobs] == [1, 2, 1, 1]
    assert "interrupted" in jobs[1]["errors"][0]["error"]
    for before, after in pairwise(jobs):
        assert after["depends_on"] == before["job_id"]
        assert before["completed_at"] <= after["started_at"]
