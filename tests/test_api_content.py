"""The content API: read, edit with versions, delete, templates."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest
from conftest import Client, auth, finished

from toombos_edge.appkeys import BACKEND, CONTENT
from toombos_edge.records.content import ContentItem, new_item

pytestmark = pytest.mark.backends


async def _stored(client: Client) -> ContentItem:
    item = new_item("email", {"subject": "Launch", "text": "Plain", "html": "<p>x</p>"},
                    job_id="job_1", document_id=None, style="modern", tone="casual",
                    content_type="update")
    return await client.app[BACKEND].content.add(item)


async def test_read_edit_versions_delete(
    client: Client, make_key: Callable[[str], Awaitable[str]]
) -> None:
    viewer, operator = await make_key("viewer"), await make_key("operator")
    item = await _stored(client)
    for path in (f"/api/v1/content/{item.id}", f"/api/v2/content/{item.id}"):
        got = await client.get(path, headers=auth(viewer))
        body = await got.json()
        assert got.status == 200 and body["content_id"] == item.id and body["version"] == 1
    denied = await client.put(f"/api/v2/content/{item.id}", json={"subject": "x"},
                              headers=auth(viewer))
    assert denied.status == 403
    edited = await client.put(f"/api/v2/content/{item.id}", headers=auth(operator),
                              json={"subject": "Launch day", "expected_version": 1})
    body = await edited.json()
    assert edited.status == 200 and body["version"] == 2
    assert body["body"] == {"subject": "Launch day", "text": "Plain", "html": "<p>x</p>"}
    stale = await client.put(f"/api/v2/content/{item.id}", headers=auth(operator),
                             json={"subject": "lost", "expected_version": 1})
    assert stale.status == 409
    versions = await (await client.get(f"/api/v2/content/{item.id}/versions",
                                       headers=auth(viewer))).json()
    assert [v["body"]["subject"] for v in versions["versions"]] == ["Launch day", "Launch"]
    gone = await client.delete(f"/api/v2/content/{item.id}", headers=auth(operator))
    assert (await gone.json())["deleted"] is True
    missing = await client.get(f"/api/v2/content/{item.id}", headers=auth(viewer))
    assert missing.status == 404 and "detail" in await missing.json()


async def test_edits_of_different_fields_at_once_all_land(
    client: Client, make_key: Callable[[str], Awaitable[str]]
) -> None:
    """Edits without ``expected_version`` merge into the body as it is when they are
    stored, not as it was read: none of several sent at once undoes another."""
    operator = await make_key("operator")
    item = await _stored(client)
    edits = {"title": "T", "preheader": "P", "meta_description": "M", "link": "L",
             "text": "Rewritten", "hashtags": ["launch"]}
    answers = await asyncio.gather(*(
        client.put(f"/api/v2/content/{item.id}", headers=auth(operator), json={name: value})
        for name, value in edits.items()))
    assert [answer.status for answer in answers] == [200] * len(edits)
    body = (await client.app[BACKEND].content.get(item.id)).body
    assert body == {"subject": "Launch", "html": "<p>x</p>", **edits}
    assert (await client.app[BACKEND].content.get(item.id)).version == 1 + len(edits)


async def test_list_by_job_and_channel(
    client: Client, make_key: Callable[[str], Awaitable[str]]
) -> None:
    viewer = await make_key("viewer")
    first, second = await _stored(client), await _stored(client)
    listed = await (await client.get("/api/v2/content", headers=auth(viewer),
                                     params={"job_id": "job_1", "channel": "email"})).json()
    assert [c["content_id"] for c in listed["content"]] == [second.id, first.id]
    assert listed["total"] == 2
    page = await (await client.get("/api/v2/content", headers=auth(viewer),
                                   params={"limit": "1", "offset": "1"})).json()
    assert [c["content_id"] for c in page["content"]] == [first.id] and page["total"] == 2
    none = await (await client.get("/api/v2/content", headers=auth(viewer),
                                   params={"status": "published"})).json()
    assert none == {"content": [], "total": 0, "limit": 50, "offset": 0}
    for bad in ({"limit": "0"}, {"limit": "201"}, {"offset": "-1"}):
        assert (await client.get("/api/v2/content", headers=auth(viewer),
                                 params=bad)).status == 422


async def test_publishing_a_reviewed_draft(
    client: Client, make_key: Callable[[str], Awaitable[str]]
) -> None:
    viewer, operator = auth(await make_key("viewer")), auth(await make_key("operator"))
    page = new_item("website", {"slug": "reviewed", "html": "<p>Reviewed page</p>"},
                    job_id=None, document_id=None, style="modern", tone="casual",
                    content_type="blog")
    item = await client.app[BACKEND].content.add(page)
    path = f"/api/v2/content/{item.id}/publish"
    assert (await client.post(path, headers=viewer)).status == 403
    bad = await client.post(path, headers=operator, json={"recipients": ["nobody"]})
    assert bad.status == 422
    missing = await client.post("/api/v2/content/cnt_none/publish", headers=operator)
    assert missing.status == 404
    response = await client.post(path, headers=operator)
    job = await finished(client, (await response.json())["job_id"])
    assert job["status"] == "completed" and job["channels"] == ["website"]
    assert job["results"]["website"]["url"].endswith("/site/reviewed")
    assert "Reviewed page" in await (await client.get("/site/reviewed")).text()


async def test_bad_edits_change_nothing(
    client: Client, make_key: Callable[[str], Awaitable[str]]
) -> None:
    operator = await make_key("operator")
    item = await _stored(client)
    for bad in ({"status": "published"}, {"posts": "not a list"}, {"subject": 3}, {},
                {"subject": "x", "expected_version": "1"}):
        response = await client.put(f"/api/v2/content/{item.id}", json=bad,
                                    headers=auth(operator))
        assert response.status == 422, bad
    broken = await client.put(f"/api/v2/content/{item.id}", data=b"{nope",
                              headers=auth(operator))
    assert broken.status == 400
    assert (await client.app[CONTENT].items.get(item.id)).version == 1


async def test_templates_on_both_paths(
    client: Client, make_key: Callable[[str], Awaitable[str]]
) -> None:
    viewer = await make_key("viewer")
    for path in ("/api/v2/templates", "/api/templates"):
        body = await (await client.get(path, headers=auth(viewer))).json()
        assert body["total"] == len(body["templates"]) >= 10 and body["version"]
        first = body["templates"][0]
        assert {"id", "name", "description", "style", "supported_channels",
                "variables"} <= set(first)
