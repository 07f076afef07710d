"""A graceful stop of a real server: one deadline, nothing started after the signal, every
request answered, running jobs finished or given back, and an exit whatever happens."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import sqlite3
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
from conftest import ServerProcess
from stop_support import ledger, make_plugin, starts, submit, until_closed
from support import eventually_async

#: Seconds a process may take, past its deadline, to be gone (interpreter teardown on a
#: busy machine); the deadline itself is enforced by the server.
EXIT_SLACK = 1.5


def log_entries(server: ServerProcess) -> list[dict[str, Any]]:
    return [json.loads(line) for line in server.stdout.splitlines() if line.startswith("{")]


def logged_at(server: ServerProcess, message: str) -> float:
    """Wall-clock time of the server's first log line with this message."""
    for entry in log_entries(server):
        if entry["msg"] == message:
            return datetime.fromisoformat(entry["ts"]).timestamp()
    raise AssertionError(f"no {message!r} line in {server.stdout}")


def jobs_table(data: Path) -> dict[str, tuple[str, int, str | None]]:
    with sqlite3.connect(data / "edge.db") as conn:
        rows = conn.execute("SELECT id, status, attempts, last_error FROM jobs").fetchall()
    return {row[0]: (row[1], row[2], row[3]) for row in rows}


def terminate(server: ServerProcess) -> tuple[int, float]:
    """SIGTERM; the exit code and the seconds until the process was gone."""
    assert server.proc is not None
    began = time.monotonic()
    server.proc.send_signal(signal.SIGTERM)
    code = server.proc.wait(30)
    return code, time.monotonic() - began


async def test_sigterm_starts_no_pending_job_and_waits_only_for_running_ones(
    tmp_path: Path, server_process: Callable[..., ServerProcess]
) -> None:
    """One 3 s job and a stream of 0.2 s ones on 4 workers: after the signal no job
    starts; the stop lasts about as long as the long job has left, not the 10 s timeout."""
    book = tmp_path / "ledger"
    server = server_process("--job-workers", "4", "--shutdown-timeout", "10",
                            env=make_plugin(tmp_path / "plugin"))
    key = server.admin_key()
    async with aiohttp.ClientSession() as session:
        long_job = await submit(session, server.base, key, "sleep", seconds=3, ledger=str(book))
        await eventually_async(lambda: long_job in starts(book), 20, "the long job to start")
        short = [await submit(session, server.base, key, "sleep", seconds=0.2,
                              ledger=str(book)) for _ in range(40)]
        await eventually_async(lambda: len(starts(book)) >= 7, 20, "short jobs to run")
    signalled = time.time()
    code, took = terminate(server)

    assert code == 0, server.stderr
    stopping = logged_at(server, "stopping")
    entries = ledger(book)
    late = [e for e in entries if e.what == "start" and e.at > stopping + 0.1]
    assert late == []  # nothing was claimed once the stop began
    long_end = [e.at for e in entries if e.what == "end" and e.job_id == long_job]
    assert long_end, "the long job was cut short although it fitted in the deadline"
    assert took < 10  # never the whole timeout …
    assert took < long_end[0] - signalled + EXIT_SLACK + 0.5  # … about the job's rest
    table = jobs_table(server.data_dir)
    ran = starts(book)
    for job_id in short:
        status, attempts, error = table[job_id]
        if job_id in ran:  # started before the signal: finished
            assert (status, attempts) == ("completed", 1)
        else:  # never started: still pending, not charged
            assert (status, attempts, error) == ("pending", 0, None)
    assert not any(status == "in_progress" for status, _a, _e in table.values())
    assert len(ran) < len(short) + 1  # the queue was not drained before exiting


async def test_a_job_longer_than_the_deadline_goes_back_uncharged(
    tmp_path: Path, server_process: Callable[..., ServerProcess]
) -> None:
    """The stop ends at its deadline; the job is pending again, its attempt not counted,
    and a dashboard socket was closed with 1001."""
    book = tmp_path / "ledger"
    env = make_plugin(tmp_path / "plugin")
    server = server_process("--shutdown-timeout", "2", env=env)
    key = server.admin_key()
    async with aiohttp.ClientSession() as session:
        job = await submit(session, server.base, key, "sleep", seconds=60, ledger=str(book))
        await eventually_async(lambda: job in starts(book), 20, "the job to start")
        ws = await session.ws_connect(server.base.replace("http", "ws") + "/ws/dashboard",
                                      params={"token": key})
        assert (await ws.receive_json(timeout=5))["type"] == "connection_ack"
        exited = asyncio.create_task(asyncio.to_thread(terminate, server))
        _types, close_code = await until_closed(ws)
        code, took = await exited
    assert close_code == 1001
    assert code == 0, server.stderr
    assert took < 2 + EXIT_SLACK
    # SQLite removes the WAL when its last connection closes: every connection was closed.
    assert not (server.data_dir / "edge.db-wal").exists()
    assert jobs_table(server.data_dir)[job] == ("pending", 0, None)


def multipart_upload(port: int, key: str, size: int) -> tuple[socket.socket, bytes]:
    """Open POST /api/ingest for a ``size``-byte file; returns the socket and the body not
    yet sent (the headers and the first half of the body are sent)."""
    boundary = "stopboundary"
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; "
            f"filename=\"big.txt\"\r\nContent-Type: text/plain\r\n\r\n").encode()
    body = head + b"x" * size + f"\r\n--{boundary}--\r\n".encode()
    request = (f"POST /api/ingest HTTP/1.1\r\nHost: 127.0.0.1\r\n"
               f"Authorization: Bearer {key}\r\nContent-Length: {len(body)}\r\n"
               f"Content-Type: multipart/form-data; boundary={boundary}\r\n\r\n").encode()
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    half = len(body) // 2
    sock.sendall(request + body[:half])
    return sock, body[half:]


def read_response(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes (or 30 s pass)."""
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
        if b"\r\n\r\n" in b"".join(chunks) and b"Connection: close" not in b"".join(chunks):
            break  # a kept-alive answer: its headers are enough here
    return b"".join(chunks)


def upload_being_written(data: Path) -> bool:
    return any(p.stat().st_size > 0 for p in (data / "uploads").glob("*.part"))


async def test_an_upload_finishing_after_sigterm_gets_its_202(
    tmp_path: Path, server_process: Callable[..., ServerProcess]
) -> None:
    server = server_process("--shutdown-timeout", "10")
    sock, rest = multipart_upload(server.port, server.admin_key(), 8 << 20)
    with sock:
        await eventually_async(lambda: upload_being_written(server.data_dir), 20,
                         "the upload to reach the disk")
        assert server.proc is not None
        server.proc.send_signal(signal.SIGTERM)
        await eventually_async(lambda: "stopping" in server.stdout, 10, "the stop to begin")
        sock.sendall(rest)
        answer = read_response(sock)
    assert answer.startswith(b"HTTP/1.1 202"), answer[:300]
    assert b"Connection: close" in answer  # the client goes elsewhere for the next one
    assert server.proc.wait(30) == 0
    job_id = json.loads(answer.split(b"\r\n\r\n", 1)[1])["job_id"]
    assert jobs_table(server.data_dir)[job_id][0] == "pending"  # kept for the next start


async def test_an_upload_stalled_at_the_deadline_gets_503_and_connection_close(
    tmp_path: Path, server_process: Callable[..., ServerProcess]
) -> None:
    server = server_process("--shutdown-timeout", "2")
    sock, _rest = multipart_upload(server.port, server.admin_key(), 8 << 20)
    with sock:
        await eventually_async(lambda: upload_being_written(server.data_dir), 20,
                         "the upload to reach the disk")
        code, took = terminate(server)
        answer = read_response(sock)
    assert answer.startswith(b"HTTP/1.1 503"), answer[:300]
    assert b"Connection: close" in answer and b"Retry-After: 1" in answer
    body = json.loads(answer.split(b"\r\n\r\n", 1)[1])
    assert body["error"]["code"] == "unavailable" if "error" in body else body
    assert code == 0 and took < 2 + EXIT_SLACK, server.stdout
    assert not list((server.data_dir / "uploads").glob("*.part"))  # the partial file went
    assert not (server.data_dir / "edge.db-wal").exists()  # every connection was closed


async def test_the_process_exits_at_the_deadline_when_the_loop_is_blocked(
    tmp_path: Path, server_process: Callable[..., ServerProcess]
) -> None:
    book = tmp_path / "ledger"
    server = server_process("--shutdown-timeout", "2", env=make_plugin(tmp_path / "plugin"))
    async with aiohttp.ClientSession() as session:
        job = await submit(session, server.base, server.admin_key(), "block", seconds=60,
                           ledger=str(book))
    await eventually_async(lambda: job in starts(book), 20, "the blocking job to start")
    code, took = terminate(server)
    assert code == 1  # not a clean stop, and it says so
    assert took < 2 + EXIT_SLACK
    assert "passed its deadline" in server.stdout


async def test_the_process_exits_at_the_deadline_when_a_job_will_not_stop(
    tmp_path: Path, server_process: Callable[..., ServerProcess]
) -> None:
    book = tmp_path / "ledger"
    server = server_process("--shutdown-timeout", "2", env=make_plugin(tmp_path / "plugin"))
    async with aiohttp.ClientSession() as session:
        job = await submit(session, server.base, server.admin_key(), "stubborn",
                           ledger=str(book))
        await eventually_async(lambda: job in starts(book), 20, "the stubborn job to start")
    code, took = terminate(server)
    assert code == 1
    assert took < 2 + EXIT_SLACK
    deadline_lines = [e for e in log_entries(server) if "passed its deadline" in e["msg"]]
    assert deadline_lines and deadline_lines[0]["level"] == "error"


async def read_a_file(server: ServerProcess) -> None:
    """Ingest a small file and wait for its job: a reader process has read it."""
    data = aiohttp.FormData()
    data.add_field("file", b"a note to read in a reader process", filename="note.txt",
                   content_type="text/plain")
    headers = {"Authorization": f"Bearer {server.admin_key()}"}
    async with aiohttp.ClientSession() as session:
        async with session.post(server.base + "/api/ingest", data=data,
                                headers=headers) as response:
            assert response.status == 202
            job_id = (await response.json())["job_id"]

        async def ended() -> bool:
            async with session.get(f"{server.base}/api/status/{job_id}",
                                   headers=headers) as answer:
                return (await answer.json())["status"] == "completed"

        await eventually_async(ended, 20, "the ingest job to end")


async def test_ctrl_c_stops_the_server_and_its_reader_processes_without_a_traceback(
    tmp_path: Path, server_process: Callable[..., ServerProcess]
) -> None:
    """A terminal's Ctrl-C signals the whole process group: the server and, once a file
    was read, its reader processes. The server stops them; none prints a traceback."""
    server = server_process(own_group=True)
    await read_a_file(server)
    assert server.proc is not None
    os.killpg(server.proc.pid, signal.SIGINT)
    assert server.proc.wait(30) == 0
    assert "Traceback" not in server.stderr, server.stderr[-2000:]


def reader_processes(server_pid: int) -> list[int]:
    """The server's reader processes (spawned workers, not multiprocessing's tracker)."""
    children: list[int] = []
    for task in Path(f"/proc/{server_pid}/task").iterdir():
        children += [int(pid) for pid in (task / "children").read_text().split()]
    readers = []
    for pid in children:
        with contextlib.suppress(FileNotFoundError):
            command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
            if b"spawn_main" in command and b"resource_tracker" not in command:
                readers.append(pid)
    return readers


def alive(pid: int) -> bool:
    """Still running (a zombie not yet reaped by its new parent counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


async def test_reader_processes_end_when_the_server_dies_without_stopping_them(
    tmp_path: Path, server_process: Callable[..., ServerProcess]
) -> None:
    """They ignore Ctrl-C (the server stops them itself), so a server that is killed, or
    exits at its deadline, must not leave them behind."""
    server = server_process()
    await read_a_file(server)
    assert server.proc is not None
    readers = reader_processes(server.proc.pid)
    assert readers, "a file was read, so a reader process runs"
    server.proc.kill()
    server.proc.wait(10)
    await eventually_async(lambda: not any(alive(pid) for pid in readers), 15,
                           "the reader processes to end with the server")
