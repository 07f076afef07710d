"""The HTTP side of realtime: WS tokens, the connections listing, admin broadcasts."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import Client, auth
from ws_support import next_json

from toombos_edge.appkeys import KEYS
from toombos_edge.keys import Role

pytestmark = pytest.mark.backends


async def test_a_ws_token_is_short_lived_and_carries_the_role(client: Client) -> None:
    _key, secret = await client.app[KEYS].create("viewer", Role.viewer)
    response = await client.post("/api/auth/ws-token", headers=auth(secret))
    body = await response.json()
    assert response.status == 200 and body["role"] == "viewer" and body["expires_in"] == 60
    assert body["token"].startswith("wst_") and secret not in body["token"]
    assert body["expires_at"].endswith("Z")
    assert (await client.post("/api/auth/ws-token")).status == 401


async def test_connections_lists_sockets_for_admins_only(client: Client, admin_key: str) -> None:
    _key, viewer = await client.app[KEYS].create("viewer", Role.viewer)
    ws = await client.ws_connect("/ws/session/s1", params={"token": viewer})
    await next_json(ws)
    assert (await client.get("/admin/connections", headers=auth(viewer))).status == 403
    body = await (await client.get("/admin/connections", headers=auth(admin_key))).json()
    assert body["total"] == 1 and body["per_ip"] == {"127.0.0.1": 1}
    assert body["limit_per_ip"] == 10 and body["by_endpoint"]["session"] == 1
    (conn,) = body["connections"]
    assert conn["endpoint"] == "session" and conn["target"] == "s1" and conn["role"] == "viewer"
    assert conn["auth"] == "api_key" and viewer not in str(body)
    for bad in ("0", "x", "10001"):
        response = await client.get(f"/admin/connections?limit={bad}", headers=auth(admin_key))
        assert response.status == 422
    await ws.close()


async def test_an_admin_broadcast_reaches_dashboards(client: Client, admin_key: str) -> None:
    board = await client.ws_connect("/ws/dashboard", params={"token": admin_key})
    await next_json(board)
    response = await client.post("/admin/broadcast", json={"data": {"text": "maintenance"}},
                                 headers=auth(admin_key))
    assert response.status == 202
    message = await next_json(board)
    assert message["type"] == "announcement" and message["data"] == {"text": "maintenance"}
    for bad in ({"data": "text"}, {}):
        response = await client.post("/admin/broadcast", json=bad, headers=auth(admin_key))
        assert response.status == 422


def test_the_ws_token_secret_is_private(client: Client, tmp_path: Path) -> None:
    secret = next((tmp_path / "data").glob("ws-token.key"))
    assert secret.stat().st_mode & 0o077 == 0
