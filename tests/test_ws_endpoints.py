"""The endpoints and their protocol: messages, limits, heartbeats, seeds' examples."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest
from support import eventually_async
from ws_support import (
    Client,
    ClientFactory,
    admin_secret,
    closed,
    next_json,
    raw_cycle,
    until_type,
    upgrade,
)

from toombos_edge.appkeys import BUS, ENGINE, HUB
from toombos_edge.events import (
    INGESTION_COMPLETE,
    JOB_CREATED,
    JOB_UPDATE,
    WS_CONNECTION,
    Event,
)
from toombos_edge.ids import now_ms
from toombos_edge.jobs.kinds import JobContext, JobKind
from toombos_edge.records.job import Job, JobStatus

pytestmark = pytest.mark.backends


async def test_bad_messages_get_an_error_and_the_socket_stays(client: Client) -> None:
    ws = await client.ws_connect("/ws/jobs", params={"token": admin_secret(client)})
    for sent, code in [
        ("not json", "bad_message"),
        ("[1, 2]", "bad_message"),
        ('{"no": "type"}', "bad_message"),
        ('{"type": 7}', "bad_message"),
        ('{"type": "subscribe"}', "bad_message"),
        ('{"type": "subscribe", "job_id": ""}', "bad_message"),
        ('{"type": "subscribe", "job_id": 12}', "bad_message"),
        ('{"type": "launch_rockets"}', "unknown_type"),
    ]:
        await ws.send_str(sent)
        reply = await next_json(ws)
        assert reply["type"] == "error" and reply["data"]["code"] == code, sent
        assert reply["data"]["message"] and reply["timestamp"].endswith("Z")
    await ws.send_bytes(b"\x00\x01")
    assert (await next_json(ws))["data"]["code"] == "bad_message"
    await ws.send_json({"type": "ping"})
    assert (await next_json(ws))["type"] == "pong"
    assert not ws.closed


async def test_subscriptions_belong_to_the_jobs_feed_only(client: Client) -> None:
    ws = await client.ws_connect("/ws/dashboard", params={"token": admin_secret(client)})
    await next_json(ws)
    await ws.send_json({"type": "subscribe", "job_id": "job_1"})
    reply = await next_json(ws)
    assert reply["data"]["code"] == "unknown_type" and "dashboard" in reply["data"]["message"]


async def test_a_message_over_64_kib_closes_with_1009(client: Client) -> None:
    ws = await client.ws_connect("/ws/jobs", params={"token": admin_secret(client)})
    await ws.send_str('{"type": "ping", "pad": "' + "x" * (64 * 1024) + '"}')
    assert await closed(ws) == 1009


async def test_a_flooding_client_is_closed_with_1008(
    make_client: ClientFactory
) -> None:
    client = await make_client(ws_message_rate=5)
    ws = await client.ws_connect("/ws/jobs", params={"token": admin_secret(client)})
    for _ in range(10):  # the burst: twice the rate
        await ws.send_json({"type": "ping"})
    for _ in range(10):
        assert (await next_json(ws))["type"] == "pong"
    for _ in range(5):
        await ws.send_json({"type": "ping"})
    assert await closed(ws) == 1008


async def test_a_peer_that_stops_answering_pings_is_dropped(
    make_client: ClientFactory
) -> None:
    client = await make_client(ws_heartbeat=0.2)
    hub, closes = client.app[HUB], []
    client.app[BUS].subscribe(
        lambda e: closes.append(e.body["data"]) if e.type == WS_CONNECTION
        and e.body["data"]["action"] == "closed" else None
    )
    ws = await client.ws_connect("/ws/jobs", params={"token": admin_secret(client)},
                                 autoping=False)  # the client never answers a ping
    await eventually_async(lambda: bool(closes), 10)
    assert closes[0]["reason"] == "heartbeat timeout" and hub.snapshot(1)["total"] == 0
    await ws.close()


async def test_plain_http_on_a_socket_path_needs_a_key_then_says_400(client: Client) -> None:
    assert (await client.get("/ws/jobs")).status == 401
    response = await client.get("/ws/jobs",
                                headers={"Authorization": f"Bearer {admin_secret(client)}"})
    assert response.status == 400 and "WebSocket" in (await response.json())["detail"]


async def test_ten_thousand_open_close_cycles_leave_no_count_behind(client: Client) -> None:
    hub, key = client.app[HUB], admin_secret(client)
    host, port = client.server.host, client.server.port
    paths = [f"/ws/jobs?token={key}", f"/ws/dashboard?token={key}", f"/ws/session/s?token={key}"]

    async def worker(w: int) -> list[int]:
        return [await raw_cycle(host, port, paths[(w + i) % 3], graceful=i % 2 == 0)
                for i in range(1000)]

    results = await asyncio.gather(*(worker(w) for w in range(10)))  # 10 = the per-IP limit
    assert sum(len(r) for r in results) == 10_000 and {s for r in results for s in r} == {101}
    await eventually_async(lambda: hub.snapshot(1)["total"] == 0, 10)
    assert hub.gate.slots.counts() == {} and hub.accepted == hub.closed == 10_000
    assert not hub.sockets.all and not hub.sockets.personal


async def test_seed_000_browser_client_on_ws_jobs(
    make_client: ClientFactory
) -> None:
    """`new WebSocket('ws://localhost:8000/ws/jobs')` from the frontend's own origin."""
    client = await make_client(ws_auth="origin")
    ws = await client.ws_connect("/ws/jobs", origin="http://localhost:3000")
    stamp = now_ms()
    job = Job("job-123", "generate", JobStatus.pending, stamp, stamp, channels=["email"])
    client.app[BUS].publish(Event.job(JOB_CREATED, job.to_json()))
    message = await next_json(ws)
    assert message["type"] == "job_created" and message["job"]["job_id"] == "job-123"
    assert message["job"]["channels"] == ["email"] and message["timestamp"].endswith("Z")
    await ws.send_json({"type": "subscribe", "job_id": "job-123"})
    assert (await next_json(ws))["type"] == "subscribed"
    client.app[BUS].publish(Event.job(JOB_UPDATE, job.to_json()))
    assert (await next_json(ws))["type"] == "job_update"


async def test_seed_004_dashboard_examples(client: Client) -> None:
    """`new WebSocket('ws://localhost:8000/api/v1/ws/dashboard')`, with a token."""
    ws = await client.ws_connect("/api/v1/ws/dashboard",
                                 params={"token": admin_secret(client)},
                                 origin="http://localhost:3000")
    assert (await next_json(ws))["type"] == "connection_ack"
    client.app[BUS].publish(Event.data(INGESTION_COMPLETE, {
        "files_processed": 2, "files_skipped_duplicate": 0, "total_nodes_created": 9,
    }))
    message = await until_type(ws, INGESTION_COMPLETE)
    assert message["data"]["files_processed"] == 2 and message["timestamp"].endswith("Z")
    # "Open 11 connections from same IP -> 11th rejected" (503), "disallowed origin -> rejected"
    more = [await client.ws_connect("/ws/dashboard", params={"token": admin_secret(client)})
            for _ in range(9)]
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await client.ws_connect("/ws/dashboard", params={"token": admin_secret(client)})
    assert refused.value.status == 503
    response = await client.get("/api/v1/ws/dashboard", headers=upgrade(Origin="http://evil.example"))
    assert response.status == 403
    for other in more:
        await other.close()
    await ws.send_json({"type": "ping"})
    assert (await until_type(ws, "pong"))["type"] == "pong"


# -- with the real job engine -------------------------------------------------------------


def register_kinds(client: Client) -> asyncio.Event:
    """A "slow" kind that reports progress, then waits for the returned event; a "noop"."""
    release = asyncio.Event()

    async def slow(ctx: JobContext) -> None:
        await ctx.progress(50, "half way")
        await release.wait()

    async def noop(ctx: JobContext) -> None:
        return None

    registry = client.app[ENGINE].registry
    registry.register(JobKind("slow", slow))
    registry.register(JobKind("noop", noop))
    return release


async def test_status_streams_one_job_then_closes_with_1000(client: Client) -> None:
    """Seed 003: `wscat -c "ws://localhost:8000/ws/status/JOB_ID?token=TOKEN"`."""
    release = register_kinds(client)
    key = admin_secret(client)
    response = await client.post("/api/jobs", json={"kind": "slow"},
                                 headers={"Authorization": f"Bearer {key}"})
    job_id = (await response.json())["job_id"]
    other = await client.app[ENGINE].submit("noop")
    ws = await client.ws_connect(f"/ws/status/{job_id}?token={key}")
    first = await next_json(ws)
    assert first["type"] == "job_update" and first["job"]["job_id"] == job_id
    assert first["job"]["status"] in ("pending", "in_progress")
    seen = [first]
    async with asyncio.timeout(5):
        while seen[-1]["job"]["progress"]["percent"] < 50:
            seen.append(await next_json(ws))
    assert seen[-1]["job"]["progress"]["message"] == "half way"
    release.set()
    last = await until_type(ws, "job_completed")
    assert last["job"]["status"] == "completed"
    assert await closed(ws) == 1000
    assert other.id not in {m["job"]["job_id"] for m in seen}


async def test_status_of_an_ended_job_is_its_state_then_1000(client: Client) -> None:
    register_kinds(client)
    job = await client.app[ENGINE].submit("noop")
    await client.app[ENGINE].join()
    ws = await client.ws_connect(f"/ws/status/{job.id}",
                                 params={"token": admin_secret(client)})
    message = await next_json(ws)
    assert message["job"]["status"] == "completed" and message["job"]["job_id"] == job.id
    assert await closed(ws) == 1000


async def test_status_of_an_unknown_job_is_404_before_the_upgrade(client: Client) -> None:
    key = admin_secret(client)
    response = await client.get(f"/ws/status/job_nope?token={key}", headers=upgrade())
    body = await response.json()
    assert response.status == 404 and body["error"]["code"] == "not_found"
    hub = client.app[HUB]
    assert hub.gate.refused == {"not_found": 1} and hub.gate.slots.counts() == {}


async def test_the_jobs_feed_sees_jobs_submitted_over_http(client: Client) -> None:
    register_kinds(client)
    key = admin_secret(client)
    ws = await client.ws_connect("/ws/jobs", params={"token": key})
    response = await client.post("/api/jobs", json={"kind": "noop"},
                                 headers={"Authorization": f"Bearer {key}"})
    job_id = (await response.json())["job_id"]
    created = await until_type(ws, "job_created")
    completed = await until_type(ws, "job_completed")
    assert created["job"]["job_id"] == completed["job"]["job_id"] == job_id


async def test_stats_update_carries_the_engine_figures(
    make_client: ClientFactory
) -> None:
    client = await make_client(ws_stats_interval=0.05)
    release = register_kinds(client)
    await client.app[ENGINE].submit("slow")
    board = await client.ws_connect("/ws/dashboard", params={"token": admin_secret(client)})
    async with asyncio.timeout(5):
        while True:
            stats = (await until_type(board, "stats_update"))["data"]
            if stats["running"] == 1:
                break
    assert stats["queue_depth"] == 0 and stats["jobs"]["workers"] >= 1
    assert stats["connections"]["total"] == 1 and "messages_per_second" in stats["rates"]
    release.set()
    await client.app[ENGINE].join()
