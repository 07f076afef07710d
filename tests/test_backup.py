"""Backup a running server's data dir, restore it into a new one, serve from it."""

from __future__ import annotations

import json
import secrets
import sqlite3
import subprocess
import sys
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from conftest import ServerProcess, clean_env, http
from support import eventually

TERMINAL = {"completed", "partial", "failed", "cancelled"}


def cli(*args: str, data_dir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "toombos_edge", *args, "--data-dir", str(data_dir)],
        capture_output=True, text=True, timeout=60, env=clean_env(), check=False,
    )


def upload(server: ServerProcess, name: str, data: bytes) -> str:
    """POST /api/ingest with a multipart file, as a browser or curl sends it; the job id."""
    boundary = secrets.token_hex(8)
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; "
            f"filename=\"{name}\"\r\nContent-Type: text/plain\r\n\r\n").encode()
    body += data + f"\r\n--{boundary}--\r\n".encode()
    request = urllib.request.Request(server.base + "/api/ingest", data=body, method="POST")
    request.add_header("Content-Type", f"multipart/form-data; boundary={boundary}")
    request.add_header("Authorization", f"Bearer {server.admin_key()}")
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 202
        job_id: str = json.loads(response.read())["job_id"]
        return job_id


def ended(server: ServerProcess, job_id: str, deadline: float = 20.0) -> dict[str, Any]:
    """The job once it ended (polled: the server runs it on its own)."""
    def job() -> dict[str, Any] | None:
        status, found = http("GET", f"{server.base}/api/jobs/{job_id}", key=server.admin_key())
        return found if status == 200 and found["status"] in TERMINAL else None

    return eventually(job, deadline, f"job {job_id} to end")


def test_backup_then_restore_into_a_new_dir_serves_the_same_jobs_and_documents(
    tmp_path: Path, server_process: Callable[..., ServerProcess]
) -> None:
    server = server_process("--access-log", "false")
    key = server.admin_key()
    original = b"the original bytes of an uploaded file\n" * 50
    uploaded = ended(server, upload(server, "notes.txt", original))
    status, text_job = http("POST", server.base + "/api/jobs", key=key,
                            body={"kind": "ingest", "params": {"text": "typed", "title": "T"}})
    assert status == 202 and ended(server, text_job["job_id"])["status"] == "completed"
    doc_id = uploaded["output"]["document_id"]

    made = cli("backup", str(tmp_path / "backup"), data_dir=server.data_dir)  # online
    assert made.returncode == 0, made.stderr
    assert "integrity ok" in made.stdout and "1 new blobs" in made.stdout
    sha = uploaded["output"]["sha256"]
    assert (tmp_path / "backup" / "blobs" / sha[:2] / sha[2:4] / sha).read_bytes() == original

    refused = cli("restore", str(tmp_path / "backup"), data_dir=server.data_dir)
    assert refused.returncode == 1 and "a server is running on" in refused.stderr

    restored_dir = tmp_path / "restored"
    done = cli("restore", str(tmp_path / "backup"), data_dir=restored_dir)
    assert done.returncode == 0, done.stderr
    (restored_dir / "admin.key").write_text(key)  # the operator keeps their key
    server.stop()
    again = server_process("--access-log", "false", data_dir=restored_dir)

    for job_id in (uploaded["job_id"], text_job["job_id"]):
        status, job = http("GET", f"{again.base}/api/jobs/{job_id}", key=key)
        assert (status, job["status"]) == (200, "completed")
    with urllib.request.urlopen(urllib.request.Request(
            f"{again.base}/api/documents/{doc_id}/raw",
            headers={"Authorization": f"Bearer {key}"}), timeout=10) as response:
        assert response.read() == original
    status, listing = http("GET", f"{again.base}/api/documents", key=key)
    assert status == 200 and listing["total"] == 2


def test_restore_over_a_database_needs_force_and_keeps_the_old_one(tmp_path: Path) -> None:
    backup_dir, data = tmp_path / "backup", tmp_path / "data"
    assert cli("migrate", data_dir=tmp_path / "source").returncode == 0
    assert cli("backup", str(backup_dir), data_dir=tmp_path / "source").returncode == 0
    assert cli("keys", "create", "--name", "only here", data_dir=data).returncode == 0

    refused = cli("restore", str(backup_dir), data_dir=data)
    assert refused.returncode == 1 and "--force" in refused.stderr
    assert cli("restore", str(backup_dir), "--force", data_dir=data).returncode == 0

    [aside] = data.glob("replaced-*")
    with sqlite3.connect(aside / "edge.db") as conn:  # the replaced database, whole
        assert conn.execute("SELECT name FROM api_keys").fetchall() == [("only here",)]
    with sqlite3.connect(data / "edge.db") as conn:
        assert conn.execute("SELECT count(*) FROM api_keys").fetchone()[0] == 0


def test_restore_refuses_what_is_not_a_backup(tmp_path: Path) -> None:
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "edge.db").write_bytes(b"not a database at all" * 100)
    missing = cli("restore", str(tmp_path / "nothing"), data_dir=tmp_path / "data")
    assert missing.returncode == 1 and "not a backup directory" in missing.stderr
    junk = cli("restore", str(tmp_path / "junk"), data_dir=tmp_path / "data")
    assert junk.returncode == 1 and "is not a sound SQLite database" in junk.stderr
    assert not (tmp_path / "data" / "edge.db").exists()
