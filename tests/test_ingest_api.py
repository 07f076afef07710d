from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import io
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiohttp import FormData, web
from aiohttp.test_utils import TestClient
from conftest import Client, ClientFactory, auth
from ingesting import stage
from samples import make_pdf

from toombos_edge.app import create_app
from toombos_edge.appkeys import BUS, DOCUMENTS, ENGINE, INGESTOR
from toombos_edge.events import JOB_CANCELLED, Event
from toombos_edge.events_wire import RemoteEvent
from toombos_edge.records.job import JobStatus
from toombos_edge.settings import Settings

pytestmark = pytest.mark.backends


def form(data: bytes, filename: str, metadata: str | None = None,
         content_type: str = "application/octet-stream") -> FormData:
    body = FormData()
    body.add_field("file", io.BytesIO(data), filename=filename, content_type=content_type)
    if metadata is not None:
        body.add_field("metadata", metadata)
    return body


async def finished(client: Client, key: str, job_id: str) -> dict[str, Any]:
    """The job as GET /api/status answers once the engine has run everything queued."""
    await client.app[ENGINE].join()
    response = await client.get(f"/api/status/{job_id}", headers=auth(key))
    assert response.status == 200
    return dict(await response.json())


async def ingest(client: Client, key: str, **kwargs: Any) -> dict[str, Any]:
    headers = {**auth(key), **kwargs.pop("headers", {})}
    response = await client.post("/api/ingest", headers=headers, **kwargs)
    assert response.status == 202, await response.text()
    accepted = await response.json()
    assert accepted["status"] in {"pending", "in_progress", "completed"}
    return await finished(client, key, accepted["job_id"])


def stored_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


async def test_multipart_upload_becomes_a_document(client: Client, admin_key: str) -> None:
    pdf = make_pdf(["Quarterly numbers went up"], title="Q3")
    job = await ingest(client, admin_key, data=form(pdf, "q3.pdf", '{"team": "finance"}'))
    assert job["status"] == "completed", job
    result = job["output"]
    assert (result["format"], result["duplicate"], result["bytes"]) == ("pdf", False, len(pdf))
    assert result["sha256"] == hashlib.sha256(pdf).hexdigest()
    doc = await (await client.get(f"/api/documents/{result['document_id']}",
                                  headers=auth(admin_key))).json()
    assert (doc["title"], doc["metadata"], doc["filename"]) == ("Q3", {"team": "finance"},
                                                                 "q3.pdf")
    assert "Quarterly numbers" in doc["text"]
    raw = await client.get(f"/api/documents/{doc['id']}/raw", headers=auth(admin_key))
    assert await raw.read() == pdf
    assert raw.headers["Content-Type"] == "application/pdf"


async def test_same_upload_twice_is_a_duplicate(client: Client, admin_key: str) -> None:
    first = await ingest(client, admin_key, data=form(b"twice", "a.txt"))
    second = await ingest(client, admin_key, data=form(b"twice", "b.txt"))
    assert second["output"]["duplicate"] is True
    assert second["output"]["document_id"] == first["output"]["document_id"]
    assert second["document_id"] == first["document_id"]
    assert len(stored_files(client.app[DOCUMENTS].blobs.root)) == 1


async def test_a_corrupt_upload_is_kept_without_text(client: Client, admin_key: str) -> None:
    job = await ingest(client, admin_key, data=form(b"%PDF-1.4 garbage", "bad.pdf"))
    assert job["status"] == "completed", job
    assert job["output"]["text_extracted"] is False
    assert "corrupt or unreadable PDF" in job["output"]["no_text_reason"]
    assert job["results"]["document"]["status"] == "success"
    assert job["progress"]["message"] == "document stored without text"
    docs = client.app[DOCUMENTS]
    assert stored_files(docs.uploads.root) == []
    assert len(stored_files(docs.blobs.root)) == 1
    kept = await client.get(f"/api/documents/{job['document_id']}/file", headers=auth(admin_key))
    assert await kept.read() == b"%PDF-1.4 garbage"
    # the worker survived: the next job runs
    assert (await ingest(client, admin_key, data=form(b"fine", "ok.txt")))["status"] == \
        "completed"


def multipart(disposition: str, content: bytes) -> tuple[bytes, dict[str, str]]:
    """A hand-made body, so that names no client library would send can be sent."""
    body = (b"--XyZ\r\nContent-Disposition: form-data; name=\"file\"; " +
            disposition.encode() + b"\r\nContent-Type: text/plain\r\n\r\n" + content +
            b"\r\n--XyZ--\r\n")
    return body, {"Content-Type": "multipart/form-data; boundary=XyZ"}


async def test_hostile_filenames_never_reach_the_file_system(
    client: Client, admin_key: str, settings: Settings
) -> None:
    hostile = [
        'filename="../../../../tmp/evil.txt"', 'filename="/etc/passwd"',
        'filename="..\\\\..\\\\win.ini"', 'filename=".."',
        "filename*=UTF-8''..%2F..%2Fevil%00name%07%1B.txt",  # decoded by the parser: NUL, /
        'filename="\u202egnp.exe\u0085"',  # right-to-left override, next-line (UTF-8)
    ]
    for index, disposition in enumerate(hostile):
        body, headers = multipart(disposition, f"hostile {index}".encode())
        job = await ingest(client, admin_key, data=body, headers=headers)
        assert job["status"] == "completed", (disposition, job)
        doc = await client.app[DOCUMENTS].get(job["output"]["document_id"])
        assert doc.filename is not None
        assert "/" not in doc.filename and "\\" not in doc.filename, doc.filename
        assert not doc.filename.startswith(".")
        assert all(ch.isprintable() for ch in doc.filename), doc.filename
    outside = [p for p in settings.data_dir.parent.rglob("*")
               if settings.data_dir not in p.parents and p != settings.data_dir]
    assert outside == []


async def test_raw_control_bytes_in_a_part_header_are_refused(
    client: Client, admin_key: str
) -> None:
    body, headers = multipart('filename="a\x01b\x1b.txt"', b"x")
    response = await client.post("/api/ingest", data=body, headers={**auth(admin_key),
                                                                     **headers})
    assert response.status == 400
    assert "malformed multipart body" in (await response.json())["detail"]
    assert stored_files(client.app[DOCUMENTS].uploads.root) == []


@pytest.fixture
async def small_client(
    aiohttp_client: ClientFactory, tmp_path: Path
) -> AsyncIterator[TestClient[Any, web.Application]]:
    settings = Settings.load({}, overrides={
        "data_dir": str(tmp_path / "small"), "access_log": "false", "max_upload_mb": "1"})
    yield await aiohttp_client(create_app(settings))


async def test_past_the_size_limit_is_413_and_nothing_is_kept(
    small_client: Client, tmp_path: Path
) -> None:
    key = (tmp_path / "small" / "admin.key").read_text().strip()
    big = b"x" * ((1 << 20) + 1)

    async def chunked() -> AsyncIterator[bytes]:  # no Content-Length: caught while streaming
        yield b"--B\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.txt\"\r\n\r\n"
        for start in range(0, len(big), 65536):
            yield big[start : start + 65536]
        yield b"\r\n--B--\r\n"

    for kwargs in ({"data": form(big, "big.txt")},  # with Content-Length: refused up front
                   {"data": chunked(), "headers": {"Content-Type": "multipart/form-data; "
                                                               "boundary=B"}}):
        headers = {**auth(key), **kwargs.pop("headers", {})}  # type: ignore[dict-item]
        response = await small_client.post("/api/ingest", headers=headers, **kwargs)
        assert response.status == 413
        assert "limit of 1 MiB" in (await response.json())["detail"]
    docs = small_client.app[DOCUMENTS]
    assert stored_files(docs.uploads.root) == []
    assert small_client.app[ENGINE].stats()["since_start"]["submitted"] == 0
    listed = await (await small_client.get("/api/jobs", headers=auth(key))).json()
    assert listed["total"] == 0  # nothing recorded
    ok = await small_client.post("/api/ingest", headers=auth(key), data=form(b"small", "s.txt"))
    assert ok.status == 202


async def test_metadata_must_be_an_object(client: Client, admin_key: str) -> None:
    for metadata in ("[1, 2]", '"text"', "{broken", "42"):
        response = await client.post("/api/ingest", headers=auth(admin_key),
                                     data=form(b"data", "m.txt", metadata))
        assert response.status == 422, metadata
        assert "metadata" in (await response.json())["detail"]
        response = await client.post("/api/ingest", headers=auth(admin_key),
                                     json={"metadata": metadata})
        assert response.status == 422
    assert stored_files(client.app[DOCUMENTS].uploads.root) == []


async def test_json_and_form_bodies(client: Client, admin_key: str) -> None:
    job = await ingest(client, admin_key, json={"metadata": {"a": 1}, "title": "Memo",
                                                "text": "# Heading\nbody", "format": "md"})
    doc = await client.app[DOCUMENTS].get(job["output"]["document_id"])
    assert (doc.title, doc.format, doc.metadata, doc.source) == ("Memo", "markdown", {"a": 1},
                                                                 "api")
    job = await ingest(client, admin_key, data={"metadata": "{}"})  # PowerShell's -Body @{}
    assert job["status"] == "completed"


async def test_roles_and_bad_bodies(
    client: Client, admin_key: str, make_key: Callable[[str], Awaitable[str]]
) -> None:
    viewer = await make_key("viewer")
    assert (await client.post("/api/ingest", json={})).status == 401
    assert (await client.post("/api/ingest", json={}, headers=auth(viewer))).status == 403
    response = await client.post("/api/ingest", data=b"{nope", headers={
        **auth(admin_key), "Content-Type": "application/json"})
    assert response.status == 400
    response = await client.post("/api/ingest", data=b"--B\r\ngarbage", headers={
        **auth(admin_key), "Content-Type": "multipart/form-data; boundary=B"})
    assert response.status == 400


async def test_a_restart_sweeps_uploads_that_no_job_will_read(
    aiohttp_client: ClientFactory, settings: Settings
) -> None:
    first = await aiohttp_client(create_app(settings))
    key = (settings.data_dir / "admin.key").read_text().strip()
    first.app[ENGINE].pause()  # the job stays pending across the restart
    response = await first.post("/api/ingest", headers=auth(key),
                                data=form(b"kept for its job", "kept.txt"))
    job_id = (await response.json())["job_id"]
    orphan = await stage(first.app, b"no job will read this", "orphan.txt")
    uploads = first.app[DOCUMENTS].uploads
    assert len(stored_files(uploads.root)) == 2
    await first.close()

    second = await aiohttp_client(create_app(settings))
    assert not uploads.path(orphan.name).exists()
    job = await finished(second, key, job_id)
    assert job["status"] == "completed", job
    doc = await second.app[DOCUMENTS].get(job["output"]["document_id"])
    assert doc.body == "kept for its job"
    assert stored_files(uploads.root) == []


async def test_idempotency_key_gives_the_same_job_and_keeps_one_upload(
    client: Client, admin_key: str
) -> None:
    client.app[ENGINE].pause()
    headers = {**auth(admin_key), "Idempotency-Key": "upload-1"}
    first = await client.post("/api/ingest", headers=headers, data=form(b"once", "a.txt"))
    again = await client.post("/api/ingest", headers=headers, data=form(b"once", "a.txt"))
    assert (first.status, again.status) == (202, 202)
    assert (await first.json())["job_id"] == (await again.json())["job_id"]
    assert len(stored_files(client.app[DOCUMENTS].uploads.root)) == 1
    client.app[ENGINE].resume()
    job = await finished(client, admin_key, (await first.json())["job_id"])
    assert job["status"] == "completed"
    assert stored_files(client.app[DOCUMENTS].uploads.root) == []


async def test_an_overlong_idempotency_key_is_refused_before_the_upload(
    client: Client, admin_key: str
) -> None:
    headers = {**auth(admin_key), "Idempotency-Key": "k" * 201}
    response = await client.post("/api/ingest", headers=headers, data=form(b"x", "a.txt"))
    assert response.status == 422 and "Idempotency-Key" in (await response.json())["detail"]
    assert stored_files(client.app[DOCUMENTS].uploads.root) == []
    listed = await (await client.get("/api/jobs", headers=auth(admin_key))).json()
    assert listed["total"] == 0


async def test_cancelling_a_waiting_ingest_drops_its_upload_at_once(
    client: Client, admin_key: str
) -> None:
    client.app[ENGINE].pause()
    response = await client.post("/api/ingest", headers=auth(admin_key),
                                 data=form(b"never wanted", "w.txt"))
    job_id = (await response.json())["job_id"]
    uploads = client.app[DOCUMENTS].uploads
    assert len(stored_files(uploads.root)) == 1
    cancelled = await client.post(f"/api/jobs/{job_id}/cancel", headers=auth(admin_key))
    assert (await cancelled.json())["status"] == "cancelled"
    await client.app[INGESTOR].close()  # the drop it started has finished
    assert stored_files(uploads.root) == []


async def test_another_nodes_cancel_drops_only_this_nodes_copy_of_the_upload(
    client: Client, admin_key: str, settings: Settings
) -> None:
    """A cancel published by another node (the bridge carries it here): the shared copy is
    that node's to drop, this node's own file goes (no job will read it here)."""
    client.app[ENGINE].pause()
    response = await client.post("/api/ingest", headers=auth(admin_key),
                                 data=form(b"cancelled over there", "t.txt"))
    job_id = (await response.json())["job_id"]
    job = await client.app[ENGINE].get(job_id)
    gone = dataclasses.replace(job, status=JobStatus.cancelled)
    uploads = client.app[DOCUMENTS].uploads
    assert len(stored_files(uploads.root)) == 1
    client.app[BUS].publish(RemoteEvent.of_job(JOB_CANCELLED, gone, gone.updated_at,
                                               origin="b/1", seq=1))
    await client.app[INGESTOR].close()  # any drop it started has finished
    assert stored_files(uploads.root) == []
    if settings.database_url:  # the shared copy, in PostgreSQL, is left to the other node
        conn = await asyncpg.connect(settings.database_url)
        try:
            assert await conn.fetchval("SELECT count(*) FROM uploads") == 1
        finally:
            await conn.close()


async def test_cancelling_a_running_ingest_drops_its_upload_at_once(
    client: Client, admin_key: str
) -> None:
    data = b"cancelled half way through"
    documents = client.app[DOCUMENTS]
    sha = hashlib.sha256(data).hexdigest()
    indexing: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def seen(event: Event) -> None:
        job = event.body.get("job") or {}
        if job.get("progress", {}).get("message") == "indexing" and not indexing.done():
            indexing.set_result(None)

    unsubscribe = client.app[BUS].subscribe(seen)
    async with documents.blob_lock(sha):  # the job stops where it would store the blob
        response = await client.post("/api/ingest", headers=auth(admin_key),
                                     data=form(data, "half.txt"))
        job_id = (await response.json())["job_id"]
        async with asyncio.timeout(10):
            await indexing  # extracted; now waiting for the blob's lock
        unsubscribe()
        cancelled = await client.post(f"/api/jobs/{job_id}/cancel", headers=auth(admin_key))
        assert (await cancelled.json())["status"] == "cancelled"
    await client.app[INGESTOR].close()
    assert stored_files(documents.uploads.root) == [] and not documents.blobs.exists(sha)
