"""The NUL character, which PostgreSQL cannot hold in text or jsonb: refused alike on both
backends with a 422 that says so, and nothing stored; a backslash and "u0000" written as
text are kept as they are."""

from __future__ import annotations

import pytest
from conftest import Client, auth
from test_ingest_api import form

from toombos_edge.appkeys import DOCUMENTS

pytestmark = pytest.mark.backends
NUL = "text may not hold the NUL character (\\u0000)"


async def _refused(response: object, field: str) -> None:
    assert getattr(response, "status") == 422  # noqa: B009
    body = await response.json()  # type: ignore[attr-defined]
    assert body["detail"] == NUL and body["error"]["details"]["field"] == field, body


async def test_nul_in_a_body_or_a_query_is_refused_and_nothing_is_stored(
    client: Client, admin_key: str,
) -> None:
    key = auth(admin_key)
    await _refused(await client.post("/api/jobs", headers=key, json={
        "kind": "generate", "params": {"text": "a\u0000b", "channels": ["website"]}}), "body")
    await _refused(await client.post("/api/documents", headers=key, json={
        "title": "t", "text": "x\u0000y"}), "body")
    await _refused(await client.get("/api/search", headers=key, params={"q": "a\u0000"}), "q")
    await _refused(await client.get("/api/v2/jobs", headers=key, params={"q": "a\u0000"}), "q")
    jobs = await (await client.get("/api/v2/jobs", headers=key)).json()
    documents = await (await client.get("/api/documents", headers=key)).json()
    assert jobs["total"] == 0 and documents["total"] == 0


async def test_an_escaped_backslash_before_u0000_is_text_and_kept(
    client: Client, admin_key: str,
) -> None:
    text = "a \\u0000 in a regex is not a NUL"
    response = await client.post("/api/documents", headers=auth(admin_key),
                                 json={"title": "regex", "text": text})
    assert response.status == 201, await response.text()
    doc_id = (await response.json())["id"]
    got = await (await client.get(f"/api/documents/{doc_id}", headers=auth(admin_key))).json()
    assert got["text"] == text


async def test_nul_in_a_path_or_a_form_field_is_a_clear_4xx(
    client: Client, admin_key: str,
) -> None:
    response = await client.get("/api/v2/jobs/job_%00x", headers=auth(admin_key))
    assert response.status == 404, await response.text()
    response = await client.post("/api/ingest", headers=auth(admin_key),
                                 data=form(b"hello", "a.txt", metadata='{"note": "a\\u0000"}'))
    await _refused(response, "metadata")
    titled = form(b"hello", "a.txt")
    titled.add_field("title", "t\u0000")
    await _refused(await client.post("/api/ingest", headers=auth(admin_key), data=titled),
                   "title")
    uploads = client.app[DOCUMENTS].uploads.root
    assert not [p for p in uploads.rglob("*") if p.is_file()]  # the refused uploads went
