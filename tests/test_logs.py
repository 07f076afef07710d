"""Logs of a real server: JSON lines or text, with correlation ids and never a secret."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable

import pytest
from conftest import ServerProcess, http

from toombos_edge import logs


def test_json_lines_by_default(server_process: Callable[..., ServerProcess]) -> None:
    server = server_process()
    http("GET", server.base + "/live")
    assert server.stop() == 0
    lines = server.stdout.splitlines()
    entries = [json.loads(line) for line in lines]  # every line is one JSON object
    assert {"ts", "level", "logger", "msg"} <= set(entries[0])
    assert any(e["msg"] == "ready" for e in entries)
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
    assert any(re.match(r"^\d{4}-\d\d-\d\d .* INFO +toombos_edge\.\w+: ready", ln) for ln in lines)
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
    assert server.stop() == 0
    out = server.stdout
    for secret in (admin, created["secret"], token):
        assert secret not in out
    assert "/admin/keys?token=***&limit=5" in out and "/admin/keys?Token=***" in out


def test_correlation_id_is_on_log_lines_inside_a_request(
    capsys: pytest.CaptureFixture[str],
) -> None:
    logs.configure("info", "json")
    reset = logs.correlation_id.set("trace-42")
    try:
        logging.getLogger("toombos_edge.test").info("inside", extra={"n": 1})
    finally:
        logs.correlation_id.reset(reset)
        logging.getLogger().handlers.clear()
    entry = json.loads(capsys.readouterr().out)
    assert (entry["msg"], entry["correlation_id"], entry["n"]) == ("inside", "trace-42", 1)
