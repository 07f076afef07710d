"""The gate before the upgrade: origin, per-IP limit (with trusted proxies), auth."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from conftest import settings_for
from support import eventually_async
from ws_support import (
    TIMEOUT,
    Client,
    ClientFactory,
    admin_secret,
    next_json,
    upgrade,
)

from toombos_edge.api.access_log import AccessLogger
from toombos_edge.app import create_app
from toombos_edge.appkeys import BUS, HUB, KEYS, LIFECYCLE
from toombos_edge.events import WS_CONNECTION, Event
from toombos_edge.keys import Role


def record_events(client: Client) -> list[dict[str, Any]]:
    seen: list[dict[str, Any]] = []

    def keep(event: Event) -> None:
        if event.type == WS_CONNECTION:
            seen.append(event.body["data"])

    client.app[BUS].subscribe(keep)
    return seen


async def refusal(client: Client, path: str, **headers: str) -> tuple[int, dict[str, Any], Any]:
    response = await client.get(path, headers=upgrade(**headers))
    return response.status, await response.json(), response.headers


@pytest.mark.parametrize("origin", [
    "null",
    "http://localhost:3001",  # another port
    "https://localhost:3000",  # another scheme
    "http://localhost:3000.evil.com",
    "http://evil.example",
])
async def test_a_foreign_origin_is_refused_with_403(client: Client, origin: str) -> None:
    events = record_events(client)
    key = admin_secret(client)
    status, body, _ = await refusal(client, f"/ws/jobs?token={key}", Origin=origin)
    assert status == 403
    assert body["error"]["code"] == "forbidden" and origin in body["detail"]
    assert events == [{"action": "refused", "reason": "origin", "status": 403,
                       "message": body["detail"], "path": "/ws/jobs", "ip": "127.0.0.1",
                       "origin": origin}]


async def test_allowed_and_same_origin_browsers_get_in(client: Client) -> None:
    key = admin_secret(client)
    own = f"http://{client.server.host}:{client.server.port}"
    for origin in ("http://localhost:3000", own):
        ws = await client.ws_connect(f"/ws/dashboard?token={key}", origin=origin)
        assert (await next_json(ws))["type"] == "connection_ack"
        await ws.close()


async def test_a_program_without_origin_needs_a_credential(client: Client) -> None:
    status, body, _ = await refusal(client, "/ws/jobs")
    assert status == 403 and "Origin" in body["detail"]
    ws = await client.ws_connect(f"/ws/jobs?token={admin_secret(client)}")  # wscat-style
    assert not ws.closed
    await ws.close()


async def test_no_or_bad_credential_is_401(client: Client) -> None:
    events = record_events(client)
    origin = {"Origin": "http://localhost:3000"}
    for path, headers in [
        ("/ws/jobs", origin),
        ("/ws/jobs?token=tbe_not-a-key", origin),
        ("/ws/jobs?token=wst_forged.token", origin),
        ("/ws/jobs", {**origin, "Authorization": "Bearer tbe_nope"}),
        ("/ws/jobs", {**origin, "Authorization": "Basic abc"}),
    ]:
        status, body, headers_back = await refusal(client, path, **headers)
        assert status == 401, path
        assert body["error"]["code"] == "unauthorized" and headers_back["WWW-Authenticate"]
    assert [e["reason"] for e in events] == ["auth"] * 5
    assert client.app[HUB].gate.slots.counts() == {}  # refused sockets hold no slot


async def test_each_way_of_authenticating(client: Client, make_key: Any) -> None:
    viewer = await make_key("viewer")
    token = (await (await client.post(
        "/api/auth/ws-token", headers={"Authorization": f"Bearer {viewer}"})).json())["token"]
    ways = [
        {"headers": {"Authorization": f"Bearer {viewer}"}},
        {"params": {"token": viewer}},
        {"params": {"token": token}},
    ]
    sockets = []
    for way in ways:
        ws = await client.ws_connect("/ws/dashboard", **way)
        ack = await next_json(ws)
        assert ack["data"]["role"] == "viewer" and ack["data"]["read_only"] is False
        sockets.append(ws)
    listed = client.app[HUB].snapshot(10)["connections"]
    assert sorted(c["auth"] for c in listed) == ["api_key", "header", "ws_token"]
    for ws in sockets:
        await ws.close()


@pytest.fixture
def make_key(client: Client) -> Any:
    async def make(role: str) -> str:
        _key, secret = await client.app[KEYS].create(f"test {role}", Role[role])
        return secret

    return make


async def test_a_ws_token_dies_with_its_key(client: Client, make_key: Any) -> None:
    secret = await make_key("operator")
    token = (await (await client.post(
        "/api/auth/ws-token", headers={"Authorization": f"Bearer {secret}"})).json())["token"]
    key = client.app[KEYS].authenticate(secret)
    assert key is not None
    await client.app[KEYS].revoke(key.id)
    status, body, _ = await refusal(client, f"/ws/jobs?token={token}")
    assert status == 401 and "revoked" in body["detail"]


async def test_origin_mode_lets_allowed_browsers_watch_read_only(
    make_client: ClientFactory
) -> None:
    client = await make_client(ws_auth="origin")
    allowed = "http://localhost:3000"
    ws = await client.ws_connect("/ws/dashboard", origin=allowed)
    ack = await next_json(ws)
    assert ack["data"]["read_only"] is True and ack["data"]["role"] == "viewer"
    await ws.close()
    own = f"http://{client.server.host}:{client.server.port}"
    # Same-origin is not enough without a token (a DNS-rebinding page looks same-origin),
    # personal channels always need a credential, and a bad credential is never ignored.
    assert (await refusal(client, "/ws/jobs", Origin=own))[0] == 401
    assert (await refusal(client, "/ws/content/c1", Origin=allowed))[0] == 401
    assert (await refusal(client, "/ws/jobs?token=bad", Origin=allowed))[0] == 401
    assert (await refusal(client, "/ws/jobs", Origin="http://evil.example"))[0] == 403


async def test_exactly_the_limit_is_accepted_from_one_ip(
    make_client: ClientFactory
) -> None:
    limit = 4
    client = await make_client(ws_max_per_ip=limit)
    key = admin_secret(client)
    paths = ["/ws/jobs", "/ws/dashboard", "/ws/content/a", "/ws/session/b"]  # all count
    attempts = await asyncio.gather(*(
        client.ws_connect(f"{paths[i % 4]}?token={key}") for i in range(limit + 10)
    ), return_exceptions=True)
    opened = [a for a in attempts if isinstance(a, aiohttp.ClientWebSocketResponse)]
    refused = [a for a in attempts if isinstance(a, aiohttp.WSServerHandshakeError)]
    assert len(opened) == limit and len(refused) == 10
    assert {r.status for r in refused} == {503}
    status, body, headers = await refusal(client, f"/ws/jobs?token={key}")
    assert status == 503 and headers["Retry-After"] == "5"
    assert body["error"]["code"] == "unavailable" and "127.0.0.1" in body["detail"]
    assert client.app[HUB].gate.refused["per_ip_limit"] == 11
    await opened[0].close()
    slots = client.app[HUB].gate.slots
    await eventually_async(lambda: slots.counts() == {"127.0.0.1": limit - 1}, TIMEOUT)
    again = await client.ws_connect(f"/ws/jobs?token={key}")  # a freed slot is reusable
    for ws in [*opened[1:], again]:
        await ws.close()
    await eventually_async(lambda: slots.counts() == {}, TIMEOUT)


async def test_trusted_proxies_and_spoofed_forwarded_for(
    make_client: ClientFactory, tmp_path: Path
) -> None:
    proxied = await make_client(tmp_path / "a", ws_max_per_ip=1, trusted_proxies="127.0.0.1")
    key = admin_secret(proxied)
    first = await proxied.ws_connect(f"/ws/jobs?token={key}",
                                     headers={"X-Forwarded-For": "6.6.6.6, 198.51.100.1"})
    second = await proxied.ws_connect(f"/ws/jobs?token={key}",
                                      headers={"X-Forwarded-For": "198.51.100.2"})
    assert proxied.app[HUB].gate.slots.counts() == {"198.51.100.1": 1, "198.51.100.2": 1}
    status, _, _ = await refusal(proxied, f"/ws/jobs?token={key}",
                                 **{"X-Forwarded-For": "7.7.7.7, 198.51.100.1"})
    assert status == 503  # the spoofed left-most entry does not buy a new budget
    await first.close()
    await second.close()

    direct = await make_client(tmp_path / "b", ws_max_per_ip=1)  # trusts nobody
    key = admin_secret(direct)
    ws = await direct.ws_connect(f"/ws/jobs?token={key}", headers={"X-Forwarded-For": "1.1.1.1"})
    status, _, _ = await refusal(direct, f"/ws/jobs?token={key}",
                                 **{"X-Forwarded-For": "2.2.2.2"})
    assert status == 503 and direct.app[HUB].gate.slots.counts() == {"127.0.0.1": 1}
    await ws.close()


async def test_tokens_never_reach_logs_or_events(
    aiohttp_client: ClientFactory, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Before the server: aiohttp asks the access logger once per connection whether it logs.
    caplog.set_level(logging.DEBUG)
    server = TestServer(create_app(settings_for(tmp_path)))
    await server.start_server(access_log_class=AccessLogger,
                              access_log=logging.getLogger("toombos_edge.access"))
    client = await aiohttp_client(server)
    events = record_events(client)
    key = admin_secret(client)
    token = (await (await client.post(
        "/api/auth/ws-token", headers={"Authorization": f"Bearer {key}"})).json())["token"]
    ws = await client.ws_connect(f"/ws/jobs?token={token}")
    await ws.close()
    await refusal(client, f"/ws/jobs?token={key}", Origin="null")
    await refusal(client, "/ws/jobs?token=tbe_wrong-secret")
    await until_logged(caplog, "/ws/jobs?token=***")
    text = caplog.text + repr(events)
    assert "token=***" in text
    for secret in (key, token, "tbe_wrong-secret", token.split(".")[1]):
        assert secret not in text


async def until_logged(caplog: pytest.LogCaptureFixture, needle: str) -> None:
    await eventually_async(lambda: caplog.text.count(needle) >= 3, 5, f"3 lines of {needle!r}",
                           every=0.01)


async def test_a_stopping_server_refuses_new_sockets_with_503(client: Client) -> None:
    """Its sockets are closing: one opened now (say over a kept-alive connection) would
    hold the stop until its deadline. The client is told to come back in a second."""
    events = record_events(client)
    key = admin_secret(client)
    client.app[LIFECYCLE].stopping = True
    status, body, headers = await refusal(client, f"/ws/jobs?token={key}")
    assert status == 503 and headers["Retry-After"] == "1"
    assert "stopping" in body["error"]["message"]
    assert [e["reason"] for e in events] == ["stopping"]
    assert client.app[HUB].gate.slots.counts() == {}
    client.app[LIFECYCLE].stopping = False  # the test's own cleanup stops it for real
