from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable

import pytest
from conftest import Client, auth
from ingesting import ingest_bytes

pytestmark = pytest.mark.backends


async def create(client: Client, key: str, **body: object) -> dict[str, object]:
    response = await client.post("/api/documents", json=body, headers=auth(key))
    assert response.status == 201, await response.text()
    return dict(await response.json())


async def test_create_get_and_the_v1_alias(client: Client, admin_key: str) -> None:
    doc = await create(client, admin_key, title="Hello", text="body text",
                       metadata={"team": "a"}, format="md")
    assert doc["sha256"] == hashlib.sha256(b"body text").hexdigest()
    assert (doc["format"], doc["source"], doc["size"]) == ("markdown", "api", 9)
    for prefix in ("/api", "/api/v1"):
        response = await client.get(f"{prefix}/documents/{doc['id']}", headers=auth(admin_key))
        assert (await response.json())["text"] == "body text"


async def test_seed_shape_with_content_field(client: Client, admin_key: str) -> None:
    response = await client.post("/api/v1/documents", headers=auth(admin_key), json={
        "title": "New Document", "content": "Document content...", "type": "document"})
    body = await response.json()
    assert (response.status, body["text"], body["title"]) == (
        201, "Document content...", "New Document")


async def test_list_paginates_and_filters(client: Client, admin_key: str) -> None:
    ids = [(await create(client, admin_key, text=f"t{i}"))["id"] for i in range(3)]
    await ingest_bytes(client.app, b"from a file", "f.txt")
    response = await client.get("/api/documents?limit=2&offset=1&source=api",
                                headers=auth(admin_key))
    body = await response.json()
    assert (body["total"], body["limit"], body["offset"]) == (3, 2, 1)
    assert [d["id"] for d in body["documents"]] == [ids[1], ids[0]]
    assert "text" not in body["documents"][0]
    uploads = await (await client.get("/api/documents?source=upload&format=text",
                                      headers=auth(admin_key))).json()
    assert uploads["total"] == 1


async def test_update_moves_the_hash_with_the_text(client: Client, admin_key: str) -> None:
    doc = await create(client, admin_key, text="before")
    response = await client.put(f"/api/documents/{doc['id']}", headers=auth(admin_key),
                                json={"text": "after", "metadata": '{"v": 2}'})
    body = await response.json()
    assert body["sha256"] == hashlib.sha256(b"after").hexdigest()
    assert (body["text"], body["metadata"]) == ("after", {"v": 2})


async def test_delete(client: Client, admin_key: str) -> None:
    doc = await create(client, admin_key, text="bye")
    response = await client.delete(f"/api/v1/documents/{doc['id']}", headers=auth(admin_key))
    assert (await response.json()) == {"id": doc["id"], "deleted": True, "blob_removed": False}
    response = await client.get(f"/api/documents/{doc['id']}", headers=auth(admin_key))
    assert response.status == 404
    assert (await response.json())["error"]["code"] == "not_found"


async def test_raw_serves_the_original_as_an_attachment(client: Client, admin_key: str) -> None:
    data = b"<html><title>T</title><p>x</p></html>"
    result = await ingest_bytes(client.app, data, "../../evil \"name\".html")
    response = await client.get(f"/api/documents/{result['document_id']}/raw",
                                headers=auth(admin_key))
    assert response.status == 200
    assert await response.read() == data
    assert response.headers["Content-Type"].startswith("text/html")
    disposition = response.headers["Content-Disposition"]
    assert disposition.startswith("attachment;") and "evil" in disposition
    assert ".." not in disposition and "/" not in disposition
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Content-SHA256"] == hashlib.sha256(data).hexdigest()


async def test_raw_of_a_text_document(client: Client, admin_key: str) -> None:
    doc = await create(client, admin_key, text="a,b\n1,2", format="csv")
    response = await client.get(f"/api/documents/{doc['id']}/raw", headers=auth(admin_key))
    assert await response.read() == b"a,b\n1,2"
    assert response.headers["Content-Type"].startswith("text/csv")
    assert f'filename="{doc["id"]}.csv"' in response.headers["Content-Disposition"]


async def test_bad_input_is_a_clear_4xx_that_changes_nothing(
    client: Client, admin_key: str
) -> None:
    headers = auth(admin_key)
    doc = await create(client, admin_key, text="keep")
    cases = [
        ("POST", "/api/documents", {"title": "no text"}, 422, "text: required"),
        ("POST", "/api/documents", {"text": "x", "metadata": "[1]"}, 422, "JSON object"),
        ("POST", "/api/documents", {"text": "x", "format": "exe"}, 422, "unsupported format"),
        ("POST", "/api/documents", {"text": 7}, 422, "text: expected str | null, got int"),
        ("PUT", f"/api/documents/{doc['id']}", {}, 422, "nothing to update"),
        ("PUT", f"/api/documents/{doc['id']}", {"metadata": "nope"}, 422, "not valid JSON"),
        ("PUT", "/api/documents/doc_missing", {"text": "x"}, 404, "no document"),
    ]
    for method, path, body, status, message in cases:
        response = await client.request(method, path, json=body, headers=headers)
        assert response.status == status, (path, body)
        assert message in (await response.json())["detail"]
    for query, message in [("limit=0", "limit: expected int >= 1"),
                           ("offset=x", "offset: expected int, got str"),
                           ("source=ftp", "source: expected one of upload, api, got 'ftp'")]:
        response = await client.get(f"/api/documents?{query}", headers=headers)
        assert response.status == 422 and message == (await response.json())["detail"]
    listing = await (await client.get("/api/documents", headers=headers)).json()
    assert listing["total"] == 1


async def test_roles(
    client: Client, make_key: Callable[[str], Awaitable[str]]
) -> None:
    viewer, operator = await make_key("viewer"), await make_key("operator")
    assert (await client.get("/api/documents")).status == 401
    assert (await client.get("/api/documents", headers=auth(viewer))).status == 200
    denied = await client.post("/api/documents", json={"text": "x"}, headers=auth(viewer))
    assert denied.status == 403
    allowed = await client.post("/api/documents", json={"text": "x"}, headers=auth(operator))
    assert allowed.status == 201


async def test_raw_names_unicode_files_exactly(client: Client, admin_key: str) -> None:
    result = await ingest_bytes(client.app, b"cv", "résumé \"final\".txt")
    response = await client.get(f"/api/documents/{result['document_id']}/raw",
                                headers=auth(admin_key))
    assert response.headers["Content-Disposition"] == (
        "attachment; filename=\"r_sum_ _final_.txt\"; "
        "filename*=UTF-8''r%C3%A9sum%C3%A9%20%22final%22.txt")
