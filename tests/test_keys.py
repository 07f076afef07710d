"""API keys: shown once, kept as SHA-256, used, revoked; the first admin key."""

from __future__ import annotations

import hashlib
import sqlite3
import stat
from collections.abc import Callable
from pathlib import Path

import asyncpg
import pytest
from conftest import Client, ServerProcess, auth, http

from toombos_edge.appkeys import KEYS
from toombos_edge.events import KEY_REVOKED, Event, EventBus
from toombos_edge.events_wire import RemoteEvent
from toombos_edge.keys import KeyService, Role
from toombos_edge.settings import Settings
from toombos_edge.store import Database
from toombos_edge.store.sqlite.keys import SqliteKeyStore

pytestmark = pytest.mark.backends


async def create(client: Client, admin_key: str, **body: str) -> dict[str, str]:
    response = await client.post("/admin/keys", json=body, headers=auth(admin_key))
    assert response.status == 201, await response.text()
    created: dict[str, str] = await response.json()
    return created


def database_bytes(data_dir: Path) -> bytes:
    return b"".join(p.read_bytes() for p in data_dir.glob("edge.db*"))


async def test_secret_is_shown_once_and_stored_as_sha256_only(
    client: Client, admin_key: str, settings: Settings
) -> None:
    created = await create(client, admin_key, name="ci", role="operator")
    secret = created["secret"]
    assert secret.startswith("tbe_") and len(secret) > 40
    assert created["role"] == "operator" and created["id"].startswith("key_")
    listed = await (await client.get("/admin/keys", headers=auth(admin_key))).json()
    assert secret not in str(listed) and all("secret" not in key for key in listed["keys"])
    if settings.database_url:  # the row as PostgreSQL holds it
        conn = await asyncpg.connect(settings.database_url)
        try:
            stored = await conn.fetchval(
                "SELECT secret_hash FROM api_keys WHERE id = $1", created["id"])
            dump = await conn.fetchval("SELECT string_agg(t::text, ' ') FROM api_keys AS t")
        finally:
            await conn.close()
        assert secret not in dump
    else:
        with sqlite3.connect(settings.db_path) as conn:
            stored = conn.execute(
                "SELECT secret_hash FROM api_keys WHERE id = ?", (created["id"],)
            ).fetchone()[0]
    assert stored == hashlib.sha256(secret.encode()).digest()
    assert secret.encode() not in database_bytes(settings.data_dir)


async def test_new_key_works_for_its_role(client: Client, admin_key: str) -> None:
    viewer = (await create(client, admin_key, name="reader", role="viewer"))["secret"]
    assert (await client.get("/health/detailed", headers=auth(viewer))).status == 200
    assert (await client.get("/admin/keys", headers=auth(viewer))).status == 403


async def test_last_used_at_is_kept(client: Client, admin_key: str) -> None:
    created = await create(client, admin_key, name="used")
    before = await (await client.get("/admin/keys", headers=auth(admin_key))).json()
    assert next(k for k in before["keys"] if k["id"] == created["id"])["last_used_at"] is None
    assert (await client.get("/health/detailed", headers=auth(created["secret"]))).status == 200
    await client.app[KEYS].flush_usage()  # what the refresh task does every 2 s
    after = await (await client.get("/admin/keys", headers=auth(admin_key))).json()
    used = next(k for k in after["keys"] if k["id"] == created["id"])
    assert used["last_used_at"] is not None and used["last_used_at"].endswith("Z")


async def test_revoked_key_is_refused_at_once(client: Client, admin_key: str) -> None:
    created = await create(client, admin_key, name="short-lived", role="viewer")
    headers = auth(created["secret"])
    assert (await client.get("/health/detailed", headers=headers)).status == 200
    response = await client.delete(f"/admin/keys/{created['id']}", headers=auth(admin_key))
    assert response.status == 200
    assert (await response.json())["revoked_at"] is not None
    refused = await client.get("/health/detailed", headers=headers)
    assert refused.status == 401
    assert (await refused.json())["detail"] == "invalid or revoked API key"


async def test_a_key_revoked_on_another_node_is_refused_here_at_once(db: Database) -> None:
    """Two nodes' key services on one database; the bridge carries a's ``key_revoked`` to
    b's bus: b refuses the key at once, and its next refresh announces nothing again."""
    buses = EventBus(), EventBus()
    a, b = (KeyService(SqliteKeyStore(db), bus) for bus in buses)
    seen: list[Event] = []
    buses[1].subscribe(b.on_event)  # as the app subscribes it
    buses[1].subscribe(seen.append)
    key, secret = await a.create("ci", Role.operator)
    await b.refresh()
    assert b.authenticate(secret) == key
    await a.revoke(key.id)
    assert b.authenticate(secret) == key, "until it hears of it"
    buses[1].publish(RemoteEvent(KEY_REVOKED, {"data": {"key_id": key.id}}, 0, None,
                                 origin="a/1", seq=1))
    assert b.authenticate(secret) is None
    assert await b.refresh() == []
    assert [e.type for e in seen if not isinstance(e, RemoteEvent)] == []


async def test_revoking_an_unknown_key_is_404(client: Client, admin_key: str) -> None:
    response = await client.delete("/admin/keys/key_nope", headers=auth(admin_key))
    assert response.status == 404


async def test_bad_key_requests_are_422(client: Client, admin_key: str) -> None:
    for body in ({"name": "x", "role": "root"}, {"name": ""}, {"name": 3}, {"role": "viewer"}):
        response = await client.post("/admin/keys", json=body, headers=auth(admin_key))
        assert response.status == 422, body
    listed = await (await client.get("/admin/keys", headers=auth(admin_key))).json()
    assert len(listed["keys"]) == 1


def test_first_start_writes_admin_key_0600_and_prints_it(
    server_process: Callable[..., ServerProcess],
) -> None:
    server = server_process()
    key_file = server.data_dir / "admin.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    secret = server.admin_key()
    assert secret in server.stderr
    assert secret not in server.stdout  # printed for the operator, never logged
    status, body = http("GET", server.base + "/admin/keys", key=secret)
    assert status == 200 and [k["role"] for k in body["keys"]] == ["admin"]
    assert server.stop() == 0
    again = server_process(data_dir=server.data_dir)
    assert "admin API key" not in again.stderr  # keys exist: nothing created, nothing shown
    assert again.admin_key() == secret


async def test_list_pages_with_limit_and_offset(client: Client, admin_key: str) -> None:
    made = [(await create(client, admin_key, name=f"k{n}"))["id"] for n in range(4)]
    page = await (await client.get("/admin/keys?limit=2&offset=1", headers=auth(admin_key))).json()
    assert [k["id"] for k in page["keys"]] == made[:2]  # oldest first, after the admin key
    assert (page["limit"], page["offset"]) == (2, 1)
    for query in ("limit=0", "limit=501", "limit=ten", "offset=-1"):
        response = await client.get(f"/admin/keys?{query}", headers=auth(admin_key))
        assert response.status == 422, query


async def test_a_key_in_one_pair_of_double_quotes_is_the_same_key(
    client: Client, admin_key: str
) -> None:
    """The public dashboard stores its key JSON-encoded and some pages send it raw:
    ``Authorization: Bearer "tbe_…"``. Over HTTP and on the WebSocket gate it is the key."""
    quoted = f'"{admin_key}"'
    for header in (f"Bearer {quoted}", f"Bearer  {quoted} ", f"bearer {quoted}"):
        response = await client.get("/api/v2/jobs", headers={"Authorization": header})
        assert response.status == 200, (header, await response.text())
    ws = await client.ws_connect("/ws/jobs", headers={"Authorization": f"Bearer {quoted}"})
    ws_by_query = await client.ws_connect("/ws/jobs", params={"token": quoted})
    assert not ws.closed and not ws_by_query.closed
    await ws.close()
    await ws_by_query.close()
    # Only one pair, and only around a key: anything else is still not a key.
    for header in (f'Bearer ""{admin_key}""', f'Bearer "{admin_key}', 'Bearer ""',
                   f"Bearer '{admin_key}'"):
        response = await client.get("/api/v2/jobs", headers={"Authorization": header})
        assert response.status == 401, header
    refused = await client.get("/ws/jobs", headers={
        "Authorization": f'Bearer ""{admin_key}""', "Upgrade": "websocket",
        "Connection": "Upgrade", "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="})
    assert refused.status == 401
