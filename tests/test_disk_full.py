"""Out of space: writes get 507, reads go on, /health says why, nothing acknowledged is lost,
and writes work again once space is freed, without a restart.

Two ways to run out: the database's size limit (``db_max_size_mb``, SQLite's
``max_page_count``) with the app in-process, and a real file system that fills up (a small
tmpfs holding the whole data dir) under a real server process.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import secrets
import sqlite3
import subprocess
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient, TestServer
from conftest import (
    Client,
    ClientFactory,
    ServerProcess,
    auth,
    finished,
    http,
    settings_for,
)
from postgres import Cluster
from support import eventually

from toombos_edge.app import create_app
from toombos_edge.appkeys import ENGINE

TEXT = "words that fill the database " * 1500  # about 43 KB of text per document


async def add_document(client: Client, key: str, n: int) -> tuple[int, Any]:
    response = await client.post("/api/documents", headers=auth(key),
                                 json={"title": f"doc {n}", "text": f"{n} {TEXT}"})
    return response.status, await response.json()


async def test_a_full_database_refuses_writes_with_507_and_recovers(
    make_client: ClientFactory, tmp_path: Path
) -> None:
    client = await make_client(db_max_size_mb=1)
    key = (tmp_path / "data" / "admin.key").read_text().strip()
    response = await client.post("/api/ingest", headers=auth(key), json={"text": "early"})
    early = await finished(client, (await response.json())["job_id"])
    stored: list[str] = []
    for n in range(200):
        status, body = await add_document(client, key, n)
        if status == 507:
            break
        assert status == 201, body
        stored.append(body["id"])
    else:
        pytest.fail("the database never filled up")
    assert body["error"]["code"] == "insufficient_storage" and "nothing was written" in (
        body["detail"])
    assert len(stored) >= 6
    status, body = await add_document(client, key, 999)
    assert status == 507  # still full: no partial write made room
    response = await client.post("/api/ingest", headers=auth(key), json={"text": TEXT})
    assert response.status == 202  # a job's row still fits; its document will not
    squeezed = (await response.json())["job_id"]
    for n in range(2000):  # small writes take the last free pages: the file is full to the brim
        response = await client.post("/api/documents", headers=auth(key),
                                     json={"title": f"small {n}", "text": "x"})
        if response.status == 507:
            break
        assert response.status == 201
    else:
        pytest.fail("small documents never filled the last pages")

    response = await client.get(f"/api/jobs/{early['job_id']}", headers=auth(key))
    assert response.status == 200 and (await response.json())["status"] == "completed"
    response = await client.get(f"/api/documents/{stored[-1]}", headers=auth(key))
    assert response.status == 200  # reads go on
    report = await client.post("/health/check/disk")
    disk = await report.json()
    assert report.status == 503 and disk["status"] == "fail" and "out of space" in disk["message"]
    health = await (await client.get("/health")).json()
    assert health["status"] == "degraded" and health["checks"]["disk"]["status"] == "fail"

    for doc_id in stored[:4]:  # the operator frees space
        assert (await client.delete(f"/api/documents/{doc_id}", headers=auth(key))).status == 200
    response = await client.post("/api/ingest", headers=auth(key), json={"text": "again"})
    assert response.status == 202
    assert (await finished(client, (await response.json())["job_id"]))["status"] == "completed"
    report = await client.post("/health/check/disk")
    assert report.status == 200 and (await report.json())["status"] == "pass"
    for doc_id in stored[4:]:  # everything acknowledged before is still there
        response = await client.get(f"/api/documents/{doc_id}", headers=auth(key))
        assert response.status == 200
    ended = await finished(client, squeezed)  # ran out of room while running: failed, kept
    assert ended["status"] in {"completed", "failed"}, ended


async def test_health_stays_failed_until_space_is_freed_though_small_writes_fit(
    make_client: ClientFactory, tmp_path: Path
) -> None:
    """A large write hit the size limit with hundreds of KB still free; small writes fit,
    which says nothing about the next large one: /health reports out of space until
    something is freed (it passed again at its next look, and the log flipped)."""
    client = await make_client(db_max_size_mb=1)
    key = (tmp_path / "data" / "admin.key").read_text().strip()
    large = {"title": "large", "text": "words that fill the database " * 14_000}  # ~400 KB
    stored: list[str] = []
    for _ in range(5):
        response = await client.post("/api/documents", headers=auth(key), json=large)
        if response.status == 507:
            break
        stored.append((await response.json())["id"])
    else:
        pytest.fail("the database never filled up")
    assert stored, "the first large document fits"
    client.app[ENGINE].pause()  # the job's row only, not the document it would make
    small = await client.post("/api/jobs", headers=auth(key), json={"kind": "ingest",
                                                                    "params": {"text": "x"}})
    assert small.status == 202  # room for a small write
    for _ in range(2):  # and the check still says out of space, look after look
        report = await client.post("/health/check/disk")
        assert report.status == 503 and "out of space" in (await report.json())["message"]
    deleted = await client.delete(f"/api/documents/{stored[0]}", headers=auth(key))
    assert deleted.status == 200  # the operator frees space
    report = await client.post("/health/check/disk")
    assert report.status == 200 and (await report.json())["status"] == "pass"
    response = await client.post("/api/documents", headers=auth(key), json=large)
    assert response.status == 201  # and a large one fits again


# --- a real file system that fills up ------------------------------------------------------


@contextlib.contextmanager
def tmpfs(mount: Path, mode: str = "0700") -> Iterator[Path]:
    """A 24 MiB tmpfs (we run as root here; without the right to mount, this says so)."""
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size=24m,mode={mode}", "tmpfs",
                           str(mount)], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        pytest.fail(f"mounting a small tmpfs for the disk-full test needs root: {done.stderr}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "disk"
    mount.mkdir()
    with tmpfs(mount):
        yield mount


@pytest.fixture
def small_disk_for_postgres() -> Iterator[Path]:
    """The small tmpfs where PostgreSQL's own user can reach it (a test's tmp_path is
    root's alone): in a folder of its own under the system's temporary directory."""
    mount = Path(tempfile.mkdtemp(prefix="toombos-full-"))
    os.chmod(mount, 0o711)
    try:
        with tmpfs(mount, "0711"):
            yield mount
    finally:
        mount.rmdir()


def upload(server: ServerProcess, data: bytes) -> tuple[int, Any]:
    boundary = secrets.token_hex(8)
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; "
            f"filename=\"f.txt\"\r\nContent-Type: text/plain\r\n\r\n").encode()
    body += data + f"\r\n--{boundary}--\r\n".encode()
    request = urllib.request.Request(server.base + "/api/ingest", data=body, method="POST")
    request.add_header("Content-Type", f"multipart/form-data; boundary={boundary}")
    request.add_header("Authorization", f"Bearer {server.admin_key()}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def fill(folder: Path, leave: int) -> Path:
    """A ballast file that takes all free space but ``leave`` bytes."""
    ballast = folder / "ballast"
    free = os.statvfs(folder).f_bavail * os.statvfs(folder).f_frsize
    with ballast.open("wb") as out:
        out.truncate(0)
        out.write(b"\0" * max(free - leave, 0))
    return ballast


def test_a_full_file_system_refuses_uploads_and_writes_then_recovers(
    small_disk: Path, server_process: Callable[..., ServerProcess]
) -> None:
    server = server_process("--access-log", "false", "--job-workers", "1",
                            data_dir=small_disk / "data")
    key = server.admin_key()
    ballast = fill(small_disk, leave=600_000)
    acknowledged, refused = [], None
    for n in range(40):
        status, body = upload(server, f"{n} ".encode() + secrets.token_bytes(60_000).hex()
                              .encode()[:100_000])
        if status == 507:
            refused = body
            break
        assert status == 202, body
        acknowledged.append(body["job_id"])
    assert refused is not None, "the file system never filled up"
    assert refused["error"]["code"] == "insufficient_storage"  # the upload, or its job's row
    assert acknowledged, "nothing fitted before the disk was full"
    documents = []
    for n in range(100):  # the database runs out too (SQLite: database or disk is full)
        status, body = http("POST", server.base + "/api/documents", key=key,
                            body={"title": f"d{n}", "text": f"{n} {TEXT}"})
        if status == 507:
            break
        assert status == 201, body
        documents.append(body["id"])
    assert status == 507 and "database or disk is full" in body["error"]["details"]["reason"]
    status, body = upload(server, b"x" * 200_000)  # and the upload's own file
    assert status == 507 and "No space left on device" in body["error"]["details"]["reason"]

    assert http("GET", f"{server.base}/api/jobs/{acknowledged[0]}", key=key)[0] == 200
    status, report = http("GET", server.base + "/health")
    assert status == 200 and report["status"] == "degraded", report
    assert report["checks"]["disk"]["status"] == "fail"
    assert "out of space" in report["checks"]["disk"]["message"]

    ballast.unlink()  # the operator frees space
    status, body = http("POST", server.base + "/api/jobs", key=key,
                        body={"kind": "ingest", "params": {"text": "after", "title": "t"}})
    assert status == 202, body
    acknowledged.append(body["job_id"])

    def every_job_ended() -> bool:
        return all(http("GET", f"{server.base}/api/jobs/{job}", key=key)[1]["status"]
                   in {"completed", "failed"} for job in acknowledged)

    eventually(every_job_ended)
    eventually(lambda: http("GET", server.base + "/health")[1]["status"] == "healthy")
    assert server.stop() == 0
    with sqlite3.connect(small_disk / "data" / "edge.db") as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        stored = {row[0] for row in conn.execute("SELECT id FROM jobs")}
        kept = {row[0] for row in conn.execute("SELECT id FROM documents")}
    assert set(acknowledged) <= stored and set(documents) <= kept  # nothing acknowledged lost


async def test_postgresql_out_of_space_is_a_507_that_changes_nothing_and_recovers(
    small_disk_for_postgres: Path, postgres_cluster: Cluster, tmp_path: Path,
) -> None:
    """The database's own disk fills: its tables live in a tablespace on the small tmpfs
    (the WAL stays on the cluster's disk, as a production server's would on its own).
    PostgreSQL's disk_full is the same 507 as SQLite's full file; freeing the disk lets
    writes through again, and every acknowledged document is there, nothing else."""
    disk = small_disk_for_postgres
    space = disk / "pg"
    space.mkdir()
    owner = pwd.getpwnam(postgres_cluster.user)
    os.chown(space, owner.pw_uid, owner.pw_gid)
    name = f"full_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(postgres_cluster.url())
    await admin.execute(f"CREATE TABLESPACE {name} LOCATION '{space}'")
    await admin.execute(f'CREATE DATABASE "{name}" TABLESPACE {name}')
    client = TestClient(TestServer(create_app(settings_for(
        tmp_path, database_url=postgres_cluster.url(name)))))
    await client.start_server()
    try:
        key = (tmp_path / "data" / "admin.key").read_text().strip()
        ballast = fill(disk, leave=1_500_000)
        stored, body = [], {}
        for n in range(200):  # text PostgreSQL cannot compress much, unlike TEXT
            response = await client.post("/api/documents", headers=auth(key), json={
                "title": f"doc {n}", "text": " ".join(secrets.token_hex(8) for _ in range(3000))})
            status, body = response.status, await response.json()
            if status == 507:
                break
            assert status == 201, body
            stored.append(body["id"])
        else:
            pytest.fail("the tablespace never filled up")
        assert body["error"]["code"] == "insufficient_storage", body
        reason = body["error"]["details"]["reason"]  # extending or writing a table's file
        assert reason.startswith("a database write") and "No space left" in reason, body
        assert stored, "nothing fitted before the disk was full"
        # (No read here: PostgreSQL may have to write changed pages out to read others,
        # and such a read fails too while its disk is full; the README says so.)
        ballast.unlink()  # the operator frees the disk
        status, body = await add_document(client, key, 999)
        assert status == 201, body
        listed = await client.get("/api/documents?limit=300", headers=auth(key))
        assert listed.status == 200  # every acknowledged document, nothing half-written
        ids = {doc["id"] for doc in (await listed.json())["documents"]}
        assert ids == {*stored, body["id"]}
    finally:
        await client.close()
        await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        await admin.execute(f"DROP TABLESPACE {name}")
        await admin.close()
