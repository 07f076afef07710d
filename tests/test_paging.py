"""Query integers: ASCII digits only, so "²" is a 4xx and never reaches ``int()``."""

from __future__ import annotations

import pytest
from conftest import Client, auth

from toombos_edge.api.paging import parse_int

pytestmark = pytest.mark.backends


@pytest.mark.parametrize(("text", "value"), [
    ("0", 0), ("42", 42), ("-5", -5), ("+7", 7), ("²", None), ("①", None), ("٣", None),
    (" 5", None), ("1_000", None), ("", None), ("-", None), ("1e3", None), ("NaN", None),
])
def test_parse_int_takes_ascii_digits_only(text: str, value: int | None) -> None:
    assert parse_int(text) == value


@pytest.mark.parametrize("url", [
    "/api/v2/content?limit=%C2%B2", "/api/v2/content?offset=%C2%B9",
    "/api/v2/cache/history?limit=%C2%B2", "/admin/connections?limit=%C2%B2",
    "/api/v2/jobs?from=%C2%B2", "/api/jobs/export?to=%E2%91%A0",
    "/api/documents?limit=%D9%A3",
])
async def test_unicode_digits_in_a_query_are_a_4xx(client: Client, admin_key: str,
                                                   url: str) -> None:
    response = await client.get(url, headers=auth(admin_key))
    body = await response.json()
    assert response.status == 422 and body["error"]["status"] == 422
    assert "expected" in body["detail"]
