"""POST /admin/restart: its answers in-process, then a real server restarted under load
(and, for comparison, stopped then started, or killed then started): nothing lost."""

from __future__ import annotations

import asyncio
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from conftest import Client, ServerProcess, auth, clean_env, http
from stop_support import make_plugin, starts, submit, until_closed
from support import eventually, eventually_async

from toombos_edge.appkeys import BUS, LIFECYCLE
from toombos_edge.events import RATE_LIMITED, RESTART_REQUESTED, RESTARTING, Event
from toombos_edge.restart import RESTART_STAMP
from toombos_edge.settings import Settings

# -- the endpoint, in-process ---------------------------------------------------------------


async def test_restart_answers_202_at_once_and_409_while_under_way(
    client: Client, admin_key: str
) -> None:
    seen: list[Event] = []
    client.app[BUS].subscribe(seen.append)
    response = await client.post("/admin/restart", headers=auth(admin_key))
    assert response.status == 202
    body = await response.json()
    assert body["status"] == "restarting" and body["mode"] == "exec"
    types = [event.type for event in seen]
    assert types.index(RESTART_REQUESTED) < types.index(RESTARTING)
    requested = next(e for e in seen if e.type == RESTART_REQUESTED)
    assert requested.body["data"]["requested_by"]  # the key's id, never its secret
    assert admin_key not in requested.encoded.decode()
    again = await client.post("/admin/restart", headers=auth(admin_key))
    assert again.status == 409 and (await again.json())["error"]["code"] == "conflict"
    lifecycle = client.app[LIFECYCLE]
    await eventually_async(lifecycle.stop_requested.is_set, 5, "the restart to be asked for")
    assert lifecycle.restarting


async def test_restart_sooner_than_the_interval_is_429(
    client: Client, admin_key: str, settings: Settings
) -> None:
    (settings.data_dir / RESTART_STAMP).write_text(f"{time.time() - 10}\n")
    seen: list[Event] = []
    client.app[BUS].subscribe(seen.append)
    response = await client.post("/admin/restart", headers=auth(admin_key))
    assert response.status == 429
    retry = int(response.headers["Retry-After"])
    assert 1 <= retry <= 20  # 30 s interval, 10 s gone
    assert response.headers["RateLimit-Policy"] == '"restart";q=1;w=30'
    assert response.headers["RateLimit"] == f'"restart";r=0;t={retry}'
    assert (await response.json())["error"]["code"] == "too_many_requests"
    # No restart asked for; the refusal is the activity log's (rate.limited), not a restart.
    assert [event.type for event in seen] == [RATE_LIMITED]
    # Asked again and again: each a 429, one line for the lot (the README's "first refusal
    # of a client in a row only", as the request limits have it).
    for _ in range(2):
        assert (await client.post("/admin/restart", headers=auth(admin_key))).status == 429
    assert [event.type for event in seen] == [RATE_LIMITED]
    assert not client.app[LIFECYCLE].stop_requested.is_set()


async def test_restart_is_for_admins_only(
    client: Client, make_key: Callable[[str], Any]
) -> None:
    operator = await make_key("operator")
    assert (await client.post("/admin/restart")).status == 401
    assert (await client.post("/admin/restart", headers=auth(operator))).status == 403
    assert not client.app[LIFECYCLE].stop_requested.is_set()


# -- a real server under load ---------------------------------------------------------------

JOBS = 200
SOCKETS = 8


@dataclass
class Load:
    """A client sending GET /health without pause, counting what failed and how."""

    base: str
    ok: int = 0
    refused: int = 0
    failed: list[str] = field(default_factory=list)
    running: bool = True

    async def run(self, session: aiohttp.ClientSession) -> None:
        while self.running:
            try:
                async with session.get(self.base + "/health") as response:
                    await response.read()
                    if response.status == 200:
                        self.ok += 1
                    else:
                        self.failed.append(f"status {response.status}")
            except aiohttp.ClientConnectorError as exc:
                self.refused += 1
                self.failed.append(repr(exc))
            except aiohttp.ClientError as exc:
                self.failed.append(repr(exc))


async def dashboard(session: aiohttp.ClientSession, server: ServerProcess,
                    key: str) -> aiohttp.ClientWebSocketResponse:
    url = server.base.replace("http", "ws") + "/ws/dashboard"
    return await session.ws_connect(url, params={"token": key})


async def uptime(session: aiohttp.ClientSession, base: str) -> float | None:
    """The uptime of the process that answers /ready true, else None."""
    try:
        async with session.get(base + "/ready") as response:
            if response.status != 200:
                return None
        async with session.get(base + "/health") as response:
            value: float = (await response.json())["uptime"]
            return value
    except aiohttp.ClientError:
        return None


async def submit_all(session: aiohttp.ClientSession, server: ServerProcess, key: str,
                     book: Path) -> set[str]:
    ids: set[str] = set()
    for _ in range(0, JOBS, 50):
        ids |= set(await asyncio.gather(*(
            submit(session, server.base, key, "sleep", seconds=0.05, ledger=str(book))
            for _ in range(50))))
    return ids


async def all_ended(session: aiohttp.ClientSession, base: str, key: str) -> bool:
    try:
        async with session.get(base + "/api/jobs?status=pending,in_progress&limit=1",
                               headers={"Authorization": f"Bearer {key}"}) as response:
            return response.status == 200 and (await response.json())["total"] == 0
    except aiohttp.ClientError:
        return False


def statuses(data: Path) -> dict[str, tuple[str, int]]:
    with sqlite3.connect(data / "edge.db") as conn:
        return {row[0]: (row[1], row[2])
                for row in conn.execute("SELECT id, status, attempts FROM jobs")}


@pytest.mark.slow
async def test_restart_under_load_refuses_nothing_and_loses_nothing(
    tmp_path: Path, server_process: Callable[..., ServerProcess]
) -> None:
    book = tmp_path / "ledger"
    server = server_process("--job-workers", "4", "--restart-min-interval", "0",
                            env=make_plugin(tmp_path / "plugin"))
    assert server.proc is not None
    pid, key = server.proc.pid, server.admin_key()
    async with aiohttp.ClientSession() as session:
        load = Load(server.base)
        loader = asyncio.create_task(load.run(session))
        sockets = [await dashboard(session, server, key) for _ in range(SOCKETS)]
        acknowledged = await submit_all(session, server, key, book)
        await eventually_async(lambda: len(starts(book)) >= 10, 20, "jobs to run")
        closes = [asyncio.create_task(until_closed(ws)) for ws in sockets]

        began = time.monotonic()
        async with session.post(server.base + "/admin/restart",
                                headers={"Authorization": f"Bearer {key}"}) as response:
            assert response.status == 202
            assert (await response.json())["status"] == "restarting"

        async def ready_again() -> bool:
            up = await uptime(session, server.base)
            return up is not None and up < time.monotonic() - began

        await eventually_async(ready_again, 30, "the new process to be ready")
        took = time.monotonic() - began
        print(f"\nrestart: /ready again {took:.2f} s after POST /admin/restart; "
              f"{load.ok} /health answered meanwhile")
        for types, code in await asyncio.gather(*closes):
            assert "restarting" in types and code == 1012, (types, code)
        ok_before = load.ok
        await eventually_async(lambda: load.ok > ok_before + 20, 20, "the load to go on")
        load.running = False
        await loader
        again = await dashboard(session, server, key)  # sockets can reconnect
        assert (await again.receive_json(timeout=5))["type"] == "connection_ack"
        await again.close()
        await eventually_async(lambda: all_ended(session, server.base, key), 60, "every job")

    assert load.refused == 0 and load.failed == [], load.failed[:5]
    assert server.proc.poll() is None and server.proc.pid == pid  # replaced in place
    assert server.stdout.count('"msg":"ready"') == 2
    table = statuses(server.data_dir)
    assert set(table) == acknowledged and {s for s, _a in table.values()} == {"completed"}
    runs = starts(book)
    assert set(runs) == acknowledged and set(runs.values()) == {1}  # none lost, none twice


def stop_and_start(server: ServerProcess, how: signal.Signals) -> None:
    assert server.proc is not None
    server.proc.send_signal(how)
    server.proc.wait(30)
    server.start()


@pytest.mark.slow
@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "kill-9"])
async def test_stop_then_start_under_load_loses_no_job(
    tmp_path: Path, server_process: Callable[..., ServerProcess], how: signal.Signals
) -> None:
    book = tmp_path / "ledger"
    server = server_process("--job-workers", "4", env=make_plugin(tmp_path / "plugin"))
    key = server.admin_key()
    async with aiohttp.ClientSession() as session:
        acknowledged = await submit_all(session, server, key, book)
        await eventually_async(lambda: len(starts(book)) >= 10, 20, "jobs to run")
        began = time.monotonic()
        await asyncio.to_thread(stop_and_start, server, how)
        print(f"\n{how.name} then start: ready again after {time.monotonic() - began:.2f} s")
        await eventually_async(lambda: all_ended(session, server.base, key), 60, "every job")
    table = statuses(server.data_dir)
    assert set(table) == acknowledged and {s for s, _a in table.values()} == {"completed"}
    runs = starts(book)
    assert set(runs) == acknowledged  # none lost
    if how is signal.SIGTERM:  # a graceful stop lets each job run exactly once
        assert set(runs.values()) == {1}
        assert all(attempts == 1 for _s, attempts in table.values())


def test_a_socket_passed_with_listen_fds_is_served(tmp_path: Path) -> None:
    """As systemd socket activation hands it over: fd 3, LISTEN_FDS=1, LISTEN_PID=pid."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    # LISTEN_PID must name the server itself: set it in the child, just before exec.
    launcher = ("import os, sys; os.dup2(int(sys.argv[1]), 3); "
                "os.environ.update(LISTEN_FDS='1', LISTEN_PID=str(os.getpid())); "
                "os.execv(sys.executable, [sys.executable, '-m', 'toombos_edge', 'serve', "
                "'--port', '1', '--data-dir', sys.argv[2]])")
    proc = subprocess.Popen(
        [sys.executable, "-c", launcher, str(listener.fileno()), str(tmp_path / "data")],
        pass_fds=(listener.fileno(),), env=clean_env(),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    listener.close()  # the server holds it now
    try:
        def ready() -> bool:
            assert proc.poll() is None, proc.stderr
            return http("GET", f"http://127.0.0.1:{port}/ready", timeout=1)[0] == 200

        eventually(ready, 20, "the server to be ready", ignore=(OSError,))
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _err = proc.communicate(timeout=20)
    assert proc.returncode == 0
    assert f'"listening":["127.0.0.1:{port}"]'.encode() in out  # not port 1


def test_restart_in_exit_mode_ends_with_code_75_for_the_supervisor(
    server_process: Callable[..., ServerProcess]
) -> None:
    server = server_process("--restart-mode", "exit")
    status, body = http("POST", server.base + "/admin/restart", key=server.admin_key())
    assert (status, body["status"], body["mode"]) == (202, "restarting", "exit")
    assert server.proc is not None and server.proc.wait(20) == 75
    assert '"msg":"restarting"' in server.stdout
