"""The command line, run for real: keys, migrate, backup, check, serve."""

from __future__ import annotations

import json
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from conftest import ServerProcess, clean_env, http
from support import eventually

from toombos_edge.store import migrations

LATEST = migrations()[-1][0]


def cli(*args: str, data_dir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "toombos_edge", *args, "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        timeout=60,
        env=clean_env(),
        check=False,
    )


def test_keys_create_list_revoke(tmp_path: Path) -> None:
    data = tmp_path / "data"
    created = cli("keys", "create", "--name", "deploy bot", "--role", "operator", data_dir=data)
    assert created.returncode == 0, created.stderr
    secret = created.stdout.strip()
    assert secret.startswith("tbe_") and "\n" not in secret  # stdout is the secret alone
    key_id = created.stderr.split()[1]
    assert key_id.startswith("key_") and "shown once" in created.stderr
    listed = cli("keys", "list", data_dir=data)
    assert listed.stdout.splitlines() == [f"{key_id}\toperator\tactive\tdeploy bot"]
    assert secret not in listed.stdout
    revoked = cli("keys", "revoke", key_id, data_dir=data)
    assert revoked.returncode == 0 and f"revoked {key_id}" in revoked.stdout
    assert "\trevoked\t" in cli("keys", "list", data_dir=data).stdout
    assert cli("keys", "revoke", key_id, data_dir=data).returncode == 0  # again: no new line
    # Audited as the server's key changes are, in the table and the file, the actor being
    # the command line; the secret in neither.
    with sqlite3.connect(data / "edge.db") as conn:
        stored = [json.loads(line) for (line,) in conn.execute(
            "SELECT line FROM activity WHERE actor = 'local' ORDER BY id")]
    appended = [json.loads(line) for line in
                (data / "logs" / "activity.jsonl").read_text().splitlines()]
    assert stored == appended
    assert [(line["type"], line["target"]) for line in stored] == [
        ("key.created", key_id), ("key.revoked", key_id)]
    assert stored[0]["actor"]["name"].startswith("command line (")
    assert stored[0]["data"] == {"key_id": key_id, "name": "deploy bot", "role": "operator"}
    assert secret not in (data / "logs" / "activity.jsonl").read_text()


def test_keys_bad_input_is_a_clear_error(tmp_path: Path) -> None:
    data = tmp_path / "data"
    unknown = cli("keys", "revoke", "key_nope", data_dir=data)
    assert (unknown.returncode, unknown.stderr.strip()) == (1, "toombos-edge: no API key key_nope")
    bad_role = cli("keys", "create", "--name", "x", "--role", "root", data_dir=data)
    assert bad_role.returncode == 2 and "invalid choice: 'root'" in bad_role.stderr
    blank = cli("keys", "create", "--name", " ", data_dir=data)
    assert blank.returncode == 1 and "key name must be 1 to 100 characters" in blank.stderr


def test_cli_keys_reach_a_running_server(
    server_process: Callable[..., ServerProcess],
) -> None:
    server = server_process()
    created = cli("keys", "create", "--name", "live", "--role", "viewer", data_dir=server.data_dir)
    secret, key_id = created.stdout.strip(), created.stderr.split()[1]
    detailed = server.base + "/health/detailed"
    eventually(lambda: http("GET", detailed, key=secret)[0] == 200)
    cli("keys", "revoke", key_id, data_dir=server.data_dir)
    eventually(lambda: http("GET", detailed, key=secret)[0] == 401)
    # The server found the revocation in the database and announced it (its sockets on
    # that key close) without a second line: the command line wrote the revocation's. A
    # key made after it is queued after that announcement: once its line is stored, so
    # would a line of the announcement be.
    made: list[Any] = []

    def make_marker() -> bool:  # (the 401s above may have this address held back a while)
        status, body = http("POST", server.base + "/admin/keys", key=server.admin_key(),
                            body={"name": "marker", "role": "viewer"})
        made.append(body)
        return status == 201

    eventually(make_marker)
    marker = made[-1]
    db = server.data_dir / "edge.db"

    def lines(kind: str) -> list[dict[str, Any]]:
        with sqlite3.connect(db) as conn:
            rows = conn.execute("SELECT line FROM activity WHERE type = ?", (kind,))
            return [json.loads(line) for (line,) in rows]

    eventually(lambda: any(line["target"] == marker["id"] for line in lines("key.created")))
    revoked = [line for line in lines("key.revoked") if line["target"] == key_id]
    assert [line["actor"]["id"] for line in revoked] == ["local"]


def test_migrate_creates_and_is_idempotent(tmp_path: Path) -> None:
    data = tmp_path / "data"
    for _ in range(2):
        done = cli("migrate", data_dir=data)
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip().endswith(f"is at schema version {LATEST}")
    with sqlite3.connect(data / "edge.db") as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == LATEST
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_newer_database_is_refused_and_left_alone(
    tmp_path: Path, server_process: Callable[..., ServerProcess]
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    with sqlite3.connect(data / "edge.db") as conn:
        conn.execute(f"PRAGMA user_version = {LATEST + 7}")
    message = (
        f"database schema version {LATEST + 7} is newer than this server knows ({LATEST}); "
        "upgrade toombos-edge or restore a backup"
    )
    refused = cli("migrate", data_dir=data)
    assert (refused.returncode, refused.stderr.strip()) == (1, f"toombos-edge: {message}")
    server = server_process(data_dir=data, wait=False)
    assert server.proc is not None and server.proc.wait(30) == 1
    assert message in server.stdout and "Traceback" not in server.stderr
    with sqlite3.connect(data / "edge.db") as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == LATEST + 7
        assert conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0] == 0


def test_backup_while_a_server_writes(
    tmp_path: Path, server_process: Callable[..., ServerProcess]
) -> None:
    server = server_process("--access-log", "false")
    admin, stop, written = server.admin_key(), threading.Event(), []

    def writer() -> None:
        while not stop.is_set():
            body = {"name": f"k{len(written)}"}
            if http("POST", server.base + "/admin/keys", key=admin, body=body)[0] == 201:
                written.append(1)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        eventually(lambda: len(written) >= 20)
        before = len(written)
        target = tmp_path / "backup" / "edge.db"
        done = cli("backup", str(target.parent), data_dir=server.data_dir)
        during = len(written) - before
    finally:
        stop.set()
        thread.join(10)
    assert done.returncode == 0, done.stderr
    assert "integrity ok" in done.stdout and not target.with_name("edge.db.partial").exists()
    assert during > 0  # the server kept writing while the backup ran
    with sqlite3.connect(target) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        rows = conn.execute("SELECT count(*) FROM api_keys").fetchone()[0]
        assert conn.execute("PRAGMA user_version").fetchone()[0] == LATEST
    assert 1 + before <= rows <= 1 + len(written)


def test_backup_without_a_database_says_so(tmp_path: Path) -> None:
    done = cli("backup", str(tmp_path / "b.db"), data_dir=tmp_path / "empty")
    assert done.returncode == 1 and "no database at" in done.stderr


def test_check_prints_the_effective_settings(tmp_path: Path) -> None:
    done = cli("check", "--port", "9999", data_dir=tmp_path / "d")
    assert done.returncode == 0 and "port = 9999" in done.stdout


def test_serve_stops_cleanly_on_sigterm(server_process: Callable[..., ServerProcess]) -> None:
    server = server_process()
    assert http("GET", server.base + "/health")[0] == 200
    assert server.stop(signal.SIGTERM) == 0
    assert "Traceback" not in server.stderr
    assert "Warning" not in server.stderr and "warning" not in server.stderr.lower()
    assert server.stderr.count("\n") == 3  # only the first-start admin key notice and link


def test_serve_on_a_taken_port_says_so(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = cli("serve", "--port", str(port), data_dir=tmp_path / "data")
    assert done.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in done.stderr
    assert "address already in use" in done.stderr and "Traceback" not in done.stderr


def test_every_command_has_working_help(tmp_path: Path) -> None:
    """Each command's --help lists its flags (every setting among them) and exits 0."""
    commands = [["serve"], ["check"], ["migrate"], ["backup"], ["restore"], ["activity"],
                ["keys", "create"], ["keys", "list"], ["keys", "revoke"]]
    for command in commands:
        shown = cli(*command, "--help", data_dir=tmp_path / "data")
        assert shown.returncode == 0, (command, shown.stderr[-500:])
        assert "--db-synchronous" in shown.stdout and "15%" in shown.stdout, command


def test_a_mistyped_argument_gets_a_short_usage_and_its_error(tmp_path: Path) -> None:
    """Not the usage of every setting's flag first (``--help`` lists those)."""
    wrong = cli("keys", "create", "--name", "x", "--role", "root", data_dir=tmp_path / "data")
    assert wrong.returncode == 2
    lines = wrong.stderr.splitlines()
    assert len(lines) <= 4, wrong.stderr
    assert lines[0].startswith("usage: toombos-edge keys create") and "--port" not in wrong.stderr
    assert "invalid choice: 'root'" in lines[-1]
