"""Delivery: who gets which event, slow consumers, revocation, shutdown and stats."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest
from aiohttp import ClientWebSocketResponse, WSMsgType
from support import eventually_async
from ws_support import (
    TIMEOUT,
    Client,
    ClientFactory,
    admin_secret,
    closed,
    next_json,
    until_type,
)

from toombos_edge.appkeys import BUS, HUB, KEYS, SETTINGS
from toombos_edge.events import (
    CACHE_INVALIDATED,
    CONTENT_PUBLISHED,
    JOB_COMPLETED,
    JOB_CREATED,
    JOB_UPDATE,
    KEY_REVOKED,
    WS_CONNECTION,
    Event,
)
from toombos_edge.events_wire import RemoteEvent
from toombos_edge.ids import new_id, now_ms
from toombos_edge.keys import KeyService, Role
from toombos_edge.records.job import Job, JobStatus
from toombos_edge.store import Database
from toombos_edge.store.sqlite.keys import SqliteKeyStore


def job_event(type_: str, job_id: str | None = None, status: str = "pending") -> Event:
    stamp = now_ms()
    job = Job(job_id or new_id("job"), "generate", JobStatus(status), stamp, stamp)
    return Event.job(type_, job.to_json())


async def connect(client: Client, path: str, key: str | None = None) -> ClientWebSocketResponse:
    ws = await client.ws_connect(path, params={"token": key or admin_secret(client)})
    if "dashboard" in path or "/content/" in path or "/session/" in path:
        assert (await next_json(ws))["type"] == "connection_ack"
    return ws


async def nothing_more(ws: ClientWebSocketResponse, client: Client) -> None:
    """Nothing was queued for this socket: a ping's pong is the next message."""
    await ws.send_json({"type": "ping"})
    assert (await next_json(ws))["type"] == "pong"


async def test_job_events_reach_job_feeds_and_dashboards(client: Client) -> None:
    feed, board = await connect(client, "/ws/jobs"), await connect(client, "/ws/dashboard")
    event = job_event(JOB_CREATED)
    client.app[BUS].publish(event)
    for ws in (feed, board):
        message = await next_json(ws)
        assert message == event.to_json()
        assert set(message) == {"type", "job", "timestamp"} and message["job"]["job_id"]


async def test_subscribe_unsubscribe_and_star(client: Client) -> None:
    feed = await connect(client, "/ws/jobs")
    bus = client.app[BUS]
    await feed.send_json({"type": "subscribe", "job_id": "job_a"})
    ack = await next_json(feed)
    assert ack["type"] == "subscribed" and ack["data"]["subscriptions"] == ["job_a"]
    bus.publish(job_event(JOB_UPDATE, "job_b"))
    bus.publish(job_event(JOB_UPDATE, "job_a"))
    assert (await next_json(feed))["job"]["job_id"] == "job_a"
    await feed.send_json({"type": "unsubscribe", "job_id": "job_a"})
    assert (await next_json(feed))["data"]["subscriptions"] == []
    bus.publish(job_event(JOB_UPDATE, "job_a"))
    await nothing_more(feed, client)
    await feed.send_json({"type": "subscribe", "job_id": "*"})
    assert (await next_json(feed))["data"]["subscriptions"] == "*"
    bus.publish(job_event(JOB_UPDATE, "job_c"))
    assert (await next_json(feed))["job"]["job_id"] == "job_c"
    await feed.send_json({"type": "unsubscribe", "job_id": "*"})
    await next_json(feed)
    bus.publish(job_event(JOB_UPDATE, "job_d"))
    await nothing_more(feed, client)
    assert client.app[HUB].snapshot(5)["connections"][0]["subscriptions"] == []
    await feed.send_json({"type": "subscribe", "job_id": "job_e"})
    await next_json(feed)
    assert set(client.app[HUB].sockets.by_job) == {"job_e"}
    await feed.close()
    await eventually_async(lambda: not client.app[HUB].sockets.all, TIMEOUT)
    assert client.app[HUB].sockets.by_job == {}  # nothing left behind for closed sockets


async def test_content_events_and_personal_messages(client: Client) -> None:
    c1, c2 = await connect(client, "/ws/content/c1"), await connect(client, "/ws/content/c2")
    s1, feed = await connect(client, "/ws/session/s1"), await connect(client, "/ws/jobs")
    board = await connect(client, "/ws/dashboard")
    bus = client.app[BUS]
    bus.publish(Event.personal("message", {"text": "for c1"}, client_id="c1"))
    bus.publish(Event.personal("message", {"text": "for s1"}, session_id="s1"))
    assert (await next_json(c1))["data"] == {"text": "for c1"}
    assert (await next_json(s1))["data"] == {"text": "for s1"}
    published = Event.data(CONTENT_PUBLISHED, {"content_id": "cnt_1"})
    bus.publish(published)
    for ws in (c1, c2, s1, board):
        assert await next_json(ws) == published.to_json()
    await nothing_more(feed, client)  # content events are not job events
    with pytest.raises(ValueError, match="exactly one"):
        Event.personal("message", {}, client_id="a", session_id="b")


async def test_internal_events_never_reach_clients(client: Client) -> None:
    board = await connect(client, "/ws/dashboard")
    client.app[BUS].publish(Event.data(KEY_REVOKED, {"key_id": "key_unknown"}))
    client.app[BUS].publish(Event.data(WS_CONNECTION, {"action": "accepted"}))
    await nothing_more(board, client)


async def test_another_nodes_events_reach_this_nodes_sockets(client: Client) -> None:
    """What the bridge re-publishes from another node goes out as if this node had made it
    (the activity log and the counters leave it to that node; the sockets here do not)."""
    feed, board = await connect(client, "/ws/jobs"), await connect(client, "/ws/dashboard")
    now = now_ms()
    job = Job("job_far", "generate", JobStatus.pending, now, now)
    client.app[BUS].publish(RemoteEvent.of_job(JOB_CREATED, job, now, origin="b/1", seq=1))
    expected = Event(JOB_CREATED, job, timestamp=now).to_json()
    for ws in (feed, board):
        assert await next_json(ws) == expected
    data = {"keys": ["k"], "pattern": None, "tags": [], "cleared": False, "invalidated": 1}
    client.app[BUS].publish(RemoteEvent(CACHE_INVALIDATED, {"data": data}, now, None,
                                        origin="b/1", seq=2))
    assert (await next_json(board))["data"] == data
    await nothing_more(feed, client)


async def test_a_key_revoked_on_another_node_closes_its_sockets_here(client: Client) -> None:
    _key, secret = await client.app[KEYS].create("watcher", Role.viewer)
    ws = await connect(client, "/ws/jobs", secret)
    key = client.app[KEYS].authenticate(secret)
    assert key is not None
    client.app[BUS].publish(RemoteEvent(KEY_REVOKED, {"data": {"key_id": key.id}}, now_ms(),
                                        None, origin="b/1", seq=1))
    assert await closed(ws, within=5) == 1008


async def test_each_event_is_encoded_once(client: Client) -> None:
    sockets = [await connect(client, "/ws/dashboard") for _ in range(5)]
    event = job_event(JOB_CREATED)
    client.app[BUS].publish(event)
    first = event.encoded
    for ws in sockets:
        message = await ws.receive()
        assert message.data.encode() == first
    assert event.encoded is first


async def test_a_socket_that_never_reads_is_dropped_and_the_rest_keep_up(
    make_client: ClientFactory
) -> None:
    client = await make_client(ws_max_per_ip=200, ws_send_queue_kb=64)
    hub, bus = client.app[HUB], client.app[BUS]
    limit = client.app[SETTINGS].ws_send_queue_kb * 1024
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
    url = client.make_url(f"/ws/dashboard?token={admin_secret(client)}")
    readers = [await session.ws_connect(url) for _ in range(100)]
    stalled = await session.ws_connect(url)  # reads its connection_ack, then nothing more
    assert (await next_json(stalled))["type"] == "connection_ack"
    stalled_conn = max(hub.sockets.all, key=lambda c: c.id)  # ids sort by creation time
    counts = [0] * len(readers)

    async def read(i: int, ws: ClientWebSocketResponse) -> None:
        async for message in ws:
            if message.type is WSMsgType.TEXT and '"payload"' in message.data:
                counts[i] += 1

    tasks = [asyncio.create_task(read(i, ws)) for i, ws in enumerate(readers)]
    padding = "x" * 8192
    peak = 0
    total = 600
    for n in range(1, total + 1):
        bus.publish(Event.data("query_complete", {"payload": padding, "n": n}))
        peak = max(peak, stalled_conn.queued())
        await eventually_async(lambda n=n: min(counts) >= n - 4, TIMEOUT)  # type: ignore[misc]
    await eventually_async(lambda: min(counts) == total, TIMEOUT)
    assert hub.slow_closed == 1 and stalled_conn.close_code == 1013
    assert peak <= limit  # what the server held for it never passed its queue bound
    assert all(c.close_code is None for c in hub.sockets.all if c is not stalled_conn)
    await eventually_async(lambda: stalled_conn not in hub.sockets.all, TIMEOUT)
    snapshot = hub.snapshot(1)
    assert snapshot["slow_closed"] == 1 and snapshot["total"] == 100
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await session.close()


async def test_a_revoked_keys_sockets_close_at_once(client: Client) -> None:
    admin = admin_secret(client)
    _key, secret = await client.app[KEYS].create("watcher", Role.viewer)
    ws = await connect(client, "/ws/jobs", secret)
    other = await connect(client, "/ws/jobs", admin)
    key = client.app[KEYS].authenticate(secret)
    assert key is not None
    response = await client.delete(f"/admin/keys/{key.id}",
                                   headers={"Authorization": f"Bearer {admin}"})
    assert response.status == 200
    assert await closed(ws, within=5) == 1008
    await nothing_more(other, client)


async def test_a_key_revoked_from_the_cli_closes_its_sockets_within_5s(client: Client) -> None:
    _key, secret = await client.app[KEYS].create("watcher", Role.viewer)
    token = (await (await client.post(
        "/api/auth/ws-token", headers={"Authorization": f"Bearer {secret}"})).json())["token"]
    by_token = await connect(client, "/ws/dashboard", token)
    key = client.app[KEYS].authenticate(secret)
    assert key is not None
    settings = client.app[SETTINGS]
    cli_db = Database(settings.db_path, readers=1)  # what `toombos-edge keys revoke` does
    await cli_db.open()
    try:
        from toombos_edge.events import EventBus

        await KeyService(SqliteKeyStore(cli_db), EventBus()).revoke(key.id)
    finally:
        await cli_db.close()
    assert await closed(by_token, within=5) == 1008


async def test_shutdown_closes_every_socket_with_1001(client: Client) -> None:
    sockets = [await connect(client, p) for p in ("/ws/jobs", "/ws/dashboard", "/ws/content/x")]
    waits = [asyncio.create_task(closed(ws)) for ws in sockets]
    await client.server.close()
    assert await asyncio.gather(*waits) == [1001, 1001, 1001]


async def test_a_restart_says_so_and_closes_with_1012(client: Client) -> None:
    board = await connect(client, "/ws/dashboard")
    client.app[HUB].prepare_restart()
    assert (await next_json(board))["type"] == "restarting"
    waiting = asyncio.create_task(closed(board))
    await client.server.close()
    assert await waiting == 1012


async def test_dashboards_get_stats_updates(
    make_client: ClientFactory
) -> None:
    client = await make_client(ws_stats_interval=0.05)
    board = await connect(client, "/api/v1/ws/dashboard")
    feed = await connect(client, "/ws/jobs")
    client.app[BUS].publish(job_event(JOB_COMPLETED, status="completed"))
    stats = (await until_type(board, "stats_update"))["data"]
    assert stats["connections"]["total"] == 2
    assert stats["connections"]["by_endpoint"]["jobs"] == 1
    assert set(stats["rates"]) >= {"events_per_second", "messages_per_second"}
    assert {"queue_depth", "running", "jobs"} <= set(stats)
    assert (await next_json(feed))["type"] == JOB_COMPLETED  # no stats on job feeds


async def test_accepts_and_closes_are_events_for_the_activity_log(client: Client) -> None:
    seen: list[dict[str, object]] = []
    client.app[BUS].subscribe(
        lambda e: seen.append(e.body["data"]) if e.type == WS_CONNECTION else None
    )
    key = admin_secret(client)
    ws = await connect(client, "/ws/session/s9", key)
    await ws.close()
    await eventually_async(lambda: len(seen) == 2, TIMEOUT)
    accepted, done = seen
    assert accepted["action"] == "accepted" and done["action"] == "closed"
    assert accepted["connection_id"] == done["connection_id"]
    assert (accepted["endpoint"], accepted["target"], accepted["ip"]) == ("session", "s9",
                                                                          "127.0.0.1")
    assert accepted["auth"] == "api_key" and str(accepted["key_id"]).startswith("key_")
    assert (done["code"], done["reason"]) == (1000, "client") and done["sent"] == 1
    assert key not in repr(seen)
