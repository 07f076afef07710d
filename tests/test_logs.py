"""Logs of a real server: JSON lines or text, with correlation ids and never a secret."""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import ServerProcess, http

from toombos_edge import logs
from toombos_edge.api import access_log


def test_json_lines_by_default(server_process: Callable[..., ServerProcess]) -> None:
    server = server_process()
    http("GET", server.base + "/live")
    assert server.stop() == 0
    lines = server.stdout.splitlines()
    entries = [json.loads(line) for line in lines]  # every line is one JSON object
    assert {"ts", "level", "logger", "msg"} <= set(entries[0])
    # Logged once the socket accepts, with the address it accepts on.
    assert [e["listening"] for e in entries if e["msg"] == "ready"] == [
        [f"127.0.0.1:{server.port}"]]
    access = [e for e in entries if e.get("msg") == "GET /live 200"]
    assert access and access[0]["logger"] == "toombos_edge.access"
    assert access[0]["status"] == 200 and access[0]["request_id"].startswith("req_")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", entries[0]["ts"])


def test_text_with_log_format_text(server_process: Callable[..., ServerProcess]) -> None:
    server = server_process("--log-format", "text")
    http("GET", server.base + "/live")
    assert server.stop() == 0
    lines = server.stdout.splitlines()
    assert lines and not any(line.startswith("{") for line in lines)
    ready = r"^\d{4}-\d\d-\d\d .* INFO +toombos_edge.lifecycle: ready"
    assert any(re.match(ready, line) for line in lines)
    assert any("GET /live 200" in line for line in lines)


def test_no_secrets_in_logs(server_process: Callable[..., ServerProcess]) -> None:
    server = server_process("--log-level", "debug")
    admin = server.admin_key()
    token = "tok-should-never-be-logged-1234"
    status, created = http("POST", server.base + "/admin/keys", key=admin, body={"name": "x"})
    assert status == 201
    http("GET", f"{server.base}/admin/keys?token={token}&limit=5", key=admin)
    http("GET", f"{server.base}/health/detailed?api_key={token}", key=created["secret"])
    http("GET", f"{server.base}/admin/keys?Token={token}", key="tbe_wrong-" + token)
    http("GET", f"{server.base}/live?to%6Ben={token}&q=a+b", key=admin)  # an escaped name
    assert server.stop() == 0
    out = server.stdout
    for secret in (admin, created["secret"], token):
        assert secret not in out
    assert "/admin/keys?token=***&limit=5" in out and "/admin/keys?Token=***" in out
    assert "/live?token=***&q=a b" in out


def test_correlation_id_is_on_log_lines_inside_a_request(
    capsys: pytest.CaptureFixture[str],
) -> None:
    logs.configure("info", "json")
    reset = logs.correlation_id.set("trace-42")
    try:
        logging.getLogger("toombos_edge.test").info("inside", extra={"n": 1})
    finally:
        logs.correlation_id.reset(reset)
        logs.flush()  # lines are written by the log writer's thread
        logging.getLogger().handlers.clear()
    entry = json.loads(capsys.readouterr().out)
    assert (entry["msg"], entry["correlation_id"], entry["n"]) == ("inside", "trace-42", 1)


@pytest.mark.parametrize(("raw_path", "remote", "request_id"), [
    ("/health", "127.0.0.1", "req_1f"),  # the quick line
    ("/api/jobs/job_01", "::1", "trace-42.a:b"),
    ("/live?token=s3cret&limit=5", "127.0.0.1", "req_2"),  # redacted
    ('/a"b\\c', "10.0.0.1", "req_3"),  # escaped
    ("/caf\u00e9/\x7f", "10.0.0.1", "req_4"),
    ("/health", None, None),  # refused before the pipeline ran
    ("/health", '/run/a"b.sock', "req_5"),  # a Unix socket's peer
])
def test_every_access_line_is_the_json_of_the_general_formatter(
    raw_path: str, remote: str | None, request_id: str | None,
) -> None:
    """The JSON access line takes a quicker path for plain requests: whichever it takes,
    the line parses to what the general line format makes of the same request."""
    row: access_log.Row = (None, 1_765_000_000_123_456_789, "GET", raw_path, 404,
                           0.0020429999999999993, remote, request_id)
    line = access_log.renderer(logs.json_line, "toombos_edge.access")(row)
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    message, fields = access_log._message(row)
    general = logs.json_line(1_765_000_000_123, "info", "toombos_edge.access", message, fields)
    assert json.loads(line) == json.loads(general)
    assert json.loads(line)["duration_ms"] == 2.043
    assert b"s3cret" not in line


def test_writer_drops_and_counts_rather_than_block_on_a_stuck_pipe() -> None:
    read_end, write_end = os.pipe()  # nobody reads: the writer's thread blocks in write()
    stream = os.fdopen(write_end, "wb", buffering=0)
    writer = logs.LineWriter(stream, limit=100)
    try:
        line = b"x" * 1000 + b"\n"
        began = time.perf_counter()
        for _ in range(2000):  # 2 MB: far past the pipe's buffer and the queue's limit
            writer.put(line)
        assert time.perf_counter() - began < 1.0  # put() never waited on the pipe
        assert writer.dropped >= 2000 - 100 - 1000  # what neither the pipe nor the queue held
        assert not writer.flush(timeout=0.2)  # a flush gives up on a stuck stream
    finally:
        os.close(read_end)  # the blocked write fails; the thread sees a broken pipe
        writer.close(timeout=5)
        stream.close()
    assert writer.written + writer.dropped == 2000


def test_writer_keeps_order_and_flushes(tmp_path: Path) -> None:
    with open(tmp_path / "out.log", "wb") as stream:
        writer = logs.LineWriter(stream)
        for n in range(5000):
            writer.put(b"%d\n" % n)
        assert writer.flush()
        assert (tmp_path / "out.log").read_bytes().split() == [b"%d" % n for n in range(5000)]
        writer.close()
    assert (writer.written, writer.dropped) == (5000, 0)


def test_a_line_that_cannot_be_rendered_is_lost_not_the_writer(tmp_path: Path) -> None:
    with open(tmp_path / "out.log", "wb") as stream:
        writer = logs.LineWriter(stream)
        writer.put(b"before\n")
        writer.put((lambda row: None, "a renderer that broke its type"))
        writer.put((lambda row: 1 / 0, "one that raised"))
        writer.put(b"after\n")
        assert writer.flush()
        writer.put(b"later\n")  # the thread still writes
        assert writer.flush()
        writer.close()
    assert (tmp_path / "out.log").read_bytes() == b"before\nafter\nlater\n"
    assert (writer.written, writer.dropped) == (3, 2)


def test_a_stdout_nobody_reads_never_stops_the_server(tmp_path: Path) -> None:
    """The access log of 3,000 requests fills a pipe's buffer many times over: the server
    keeps answering, as it would with its logs piped to a stuck collector."""
    server = ServerProcess(tmp_path / "data", stdout_pipe=True).start()
    try:
        for _ in range(3000):
            assert http_status(server.base + "/live?padding=" + "p" * 200) == 200
    finally:
        server.stop(signal.SIGKILL, 10)
        assert server.proc is not None and server.proc.stdout is not None
        server.proc.stdout.close()


def http_status(url: str) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return int(response.status)
    except (urllib.error.URLError, ConnectionError):
        return None
