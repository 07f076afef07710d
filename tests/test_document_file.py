"""GET /api/documents/{id}/file: the original upload back, whole or by Range, under a safe
name; and files of no known format (images, random bytes) kept as documents without text."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Awaitable, Callable

from conftest import Client, auth
from test_ingest_api import finished, form, ingest

PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 4


async def upload(client: Client, key: str, data: bytes, name: str,
                 content_type: str = "application/octet-stream") -> str:
    job = await ingest(client, key, data=form(data, name, content_type=content_type))
    assert job["status"] == "completed", job
    return str(job["document_id"])


async def test_an_image_is_kept_without_text_and_served_back(
    client: Client, admin_key: str
) -> None:
    job = await ingest(client, admin_key,
                       data=form(PNG, "holiday.png", '{"album": "2026"}', "image/png"))
    assert job["status"] == "completed"
    output = job["output"]
    assert (output["format"], output["text_extracted"], output["text_length"]) == (
        "binary", False, 0)
    assert "no text can be drawn from this file (image/png)" in output["no_text_reason"]
    assert job["results"] == {"document": {
        "status": "success", "document_id": job["document_id"], "duplicate": False,
        "text_extracted": False, "timestamp": job["results"]["document"]["timestamp"]}}
    doc = await (await client.get(f"/api/documents/{job['document_id']}",
                                  headers=auth(admin_key))).json()
    assert (doc["title"], doc["format"], doc["content_type"], doc["text"], doc["metadata"]) == (
        "holiday", "binary", "image/png", "", {"album": "2026"})
    assert doc["blob_sha256"] == hashlib.sha256(PNG).hexdigest()
    response = await client.get(f"/api/documents/{doc['id']}/file", headers=auth(admin_key))
    assert (response.status, await response.read()) == (200, PNG)
    assert response.headers["Content-Type"] == "image/png"
    assert response.headers["X-Content-Type-Options"] == "nosniff"


async def test_generating_from_a_document_without_text_fails_at_once(
    client: Client, admin_key: str
) -> None:
    doc_id = await upload(client, admin_key, PNG, "photo.png", "image/png")
    response = await client.post("/api/v2/content/generate", headers=auth(admin_key),
                                 json={"document_id": doc_id, "channels": ["email"]})
    assert response.status == 202
    job = await finished(client, admin_key, (await response.json())["job_id"])
    assert (job["status"], job["attempts"]) == ("failed", 1)  # not retried: it cannot mend
    assert "has no text to generate from" in job["errors"][-1]["error"]


async def test_random_bytes_are_kept_too(client: Client, admin_key: str) -> None:
    data = os.urandom(200_000)
    doc_id = await upload(client, admin_key, data, "dump.bin")
    response = await client.get(f"/api/documents/{doc_id}/file", headers=auth(admin_key))
    assert await response.read() == data
    assert response.headers["Content-Type"] == "application/octet-stream"
    # the same bytes again: the same document, as for any upload
    again = await ingest(client, admin_key, data=form(data, "copy.bin"))
    assert (again["document_id"], again["output"]["duplicate"]) == (doc_id, True)


async def test_a_generic_media_type_is_guessed_from_the_name(
    client: Client, admin_key: str
) -> None:
    doc_id = await upload(client, admin_key, PNG, "scan.png")  # sent as octet-stream
    response = await client.get(f"/api/v1/documents/{doc_id}/file", headers=auth(admin_key))
    assert response.headers["Content-Type"] == "image/png"


async def test_ranges(client: Client, admin_key: str) -> None:
    data = bytes(range(256)) * 40  # 10,240 bytes
    doc_id = await upload(client, admin_key, data, "blob.bin")
    url = f"/api/documents/{doc_id}/file"

    async def get(range_header: str) -> tuple[int, bytes, str | None]:
        response = await client.get(url, headers={**auth(admin_key), "Range": range_header})
        return response.status, await response.read(), response.headers.get("Content-Range")

    assert await get("bytes=2-5") == (206, data[2:6], "bytes 2-5/10240")
    assert await get("bytes=10000-") == (206, data[10000:], "bytes 10000-10239/10240")
    assert await get("bytes=-16") == (206, data[-16:], "bytes 10224-10239/10240")
    status, _body, content_range = await get("bytes=20000-")
    assert (status, content_range) == (416, "bytes */10240")
    whole = await client.get(url, headers=auth(admin_key))
    assert (whole.status, whole.headers["Accept-Ranges"]) == (200, "bytes")
    assert int(whole.headers["Content-Length"]) == len(data)


async def test_the_file_name_is_safe_in_the_header(client: Client, admin_key: str) -> None:
    body = (b'--B\r\nContent-Disposition: form-data; name="file"; filename*=UTF-8\'\''
            b"..%2FPr%C3%BCfbericht%20%22Q3%22%3B%20final%0D%0A.csv\r\n"
            b"Content-Type: text/csv\r\n\r\na,b\n1,2\n\r\n--B--\r\n")
    job = await ingest(client, admin_key, data=body,
                       headers={"Content-Type": "multipart/form-data; boundary=B"})
    response = await client.get(f"/api/documents/{job['document_id']}/file",
                                headers=auth(admin_key))
    assert response.headers["Content-Disposition"] == (
        "attachment; filename=\"Pr_fbericht _Q3_; final.csv\"; "
        "filename*=UTF-8''Pr%C3%BCfbericht%20%22Q3%22%3B%20final.csv")
    assert await response.read() == b"a,b\n1,2\n"


async def test_a_document_sent_as_text_gives_its_text(client: Client, admin_key: str) -> None:
    created = await client.post("/api/documents", headers=auth(admin_key),
                                json={"title": "Note", "text": "just words"})
    doc_id = (await created.json())["id"]
    response = await client.get(f"/api/documents/{doc_id}/file", headers=auth(admin_key))
    assert (response.status, await response.read()) == (200, b"just words")
    assert response.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert "Accept-Ranges" not in response.headers  # a Range here gets the whole text


async def test_roles_and_unknown_documents(
    client: Client, admin_key: str, make_key: Callable[[str], Awaitable[str]]
) -> None:
    doc_id = await upload(client, admin_key, PNG, "a.png")
    viewer = await make_key("viewer")
    assert (await client.get(f"/api/documents/{doc_id}/file")).status == 401
    response = await client.get(f"/api/documents/{doc_id}/file", headers=auth(viewer))
    assert (response.status, await response.read()) == (200, PNG)
    missing = await client.get("/api/documents/doc_nope/file", headers=auth(viewer))
    assert missing.status == 404
    assert "doc_nope" in (await missing.json())["detail"]
