"""Generation API: preview and validate (no job needed), the generate paths as jobs."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from conftest import Client, auth

pytestmark = pytest.mark.backends

FIXTURE = (Path(__file__).parent / "fixtures" / "launch.md").read_text()


async def test_preview_renders_without_storing(
    client: Client, make_key: Callable[[str], Awaitable[str]]
) -> None:
    operator = await make_key("operator")
    query = {"title": "Offline sync", "text": FIXTURE[:600], "channels": "email,twitter",
             "tone": "encouraging", "template_style": "classic"}
    response = await client.get("/api/v1/preview", params=query, headers=auth(operator))
    body = await response.json()
    assert response.status == 200 and set(body["previews"]) == {"email", "twitter"}
    assert body["previews"]["email"]["subject"] == "Update: Offline sync"
    assert body["tone"] == "encouraging" and body["template_style"] == "classic"
    bad = await client.get("/api/v1/preview", params={"text": "x", "tone": "angry"},
                           headers=auth(operator))
    assert bad.status == 422
    nothing = await client.get("/api/v1/preview", headers=auth(operator))
    assert nothing.status == 422


async def test_validate_has_the_contract_fields(
    client: Client, make_key: Callable[[str], Awaitable[str]]
) -> None:
    operator = await make_key("operator")
    response = await client.post("/api/v2/content/validate", headers=auth(operator),
                                 json={"content": FIXTURE, "content_type": "announcement",
                                       "strict": False})
    body = await response.json()
    assert response.status == 200
    assert set(body) == {"is_valid", "content_type", "issues", "warnings", "enhanced_metadata"}
    assert set(body["enhanced_metadata"]) == {"word_count", "reading_time", "seo_score",
                                              "recommended_channels"}
