"""Pages of the website channel, served at /site/{slug} with their views counted."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest
from conftest import Client, auth

from toombos_edge.appkeys import BACKEND, CONTENT
from toombos_edge.content.channels import Channel
from toombos_edge.content.render import RenderOptions
from toombos_edge.content.source import inline_source
from toombos_edge.records.content import new_item

pytestmark = pytest.mark.backends


async def test_a_published_page_is_served_and_counted(
    client: Client, make_key: Callable[[str], Awaitable[str]]
) -> None:
    service = client.app[CONTENT]
    source = inline_source("Field notes, week 12", "We *visited* three sites.\n\n## Next\n\nMore.")
    body = await service.rendering.render(source, Channel.website, RenderOptions())
    draft = new_item("website", body, job_id=None, document_id=None, style="modern",
                     tone="casual", content_type="blog")
    item = await client.app[BACKEND].content.add(draft)
    assert (await client.get("/site/field-notes-week-12")).status == 404  # a draft
    publication = await service.items.publish(item.id)
    assert publication.url is not None and publication.url.endswith("/site/field-notes-week-12")
    for _ in range(3):
        page = await client.get("/site/field-notes-week-12")
        assert page.status == 200 and page.content_type == "text/html"
        html = await page.text()
        assert "<em>visited</em>" in html and "<h2>Next</h2>" in html
        assert "script-src" not in page.headers["Content-Security-Policy"]
    viewer = await make_key("viewer")
    stored = await (await client.get(f"/api/v2/content/{item.id}", headers=auth(viewer))).json()
    assert stored["status"] == "published" and stored["views"]["total"] == 3


async def test_unknown_and_odd_slugs_are_404(client: Client) -> None:
    for slug in ("nothing-here", "..%2Fetc", "UPPER", "a" * 200):
        response = await client.get(f"/site/{slug}")
        assert response.status == 404
        assert (await response.json())["error"]["code"] == "not_found"
