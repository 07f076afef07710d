"""The activity log: every type in the table and the file, no secrets, rotation, a full
queue, the API and the command line, against the real app and a real SQLite file; the log's
own tests (a full queue, dropped lines, pruning) on each backend's activity store."""

from __future__ import annotations

import asyncio
import json
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import WSServerHandshakeError, web
from conftest import Client, ClientFactory, auth, clean_env, finished, settings_for

from toombos_edge.activity import TYPES, ActivityLog, JsonLines, describe
from toombos_edge.app import create_app
from toombos_edge.appkeys import ACTIVITY, BUS, DATABASE, ENGINE, KEYS, SETTINGS
from toombos_edge.events import (
    CACHE_INVALIDATED,
    JOB_CREATED,
    QUERY_COMPLETE,
    RESTART_REQUESTED,
    WS_CONNECTION,
    Event,
    EventBus,
)
from toombos_edge.events_wire import RemoteEvent
from toombos_edge.ids import iso, now_ms
from toombos_edge.jobs.kinds import JobContext, JobKind, Outcome, PermanentFailure
from toombos_edge.keys import Role
from toombos_edge.records.activity import SEQ_BITS, ActivityFilter, first_id
from toombos_edge.records.job import Job, JobStatus
from toombos_edge.restart import RESTART_STAMP
from toombos_edge.routes import Route, setup_routes
from toombos_edge.settings import Settings
from toombos_edge.store.activity import ActivityStore
from toombos_edge.store.postgres.activity import PgActivityStore
from toombos_edge.store.postgres.database import PgDatabase
from toombos_edge.store.sqlite.activity import SqliteActivityStore

pytestmark = pytest.mark.backends

ORIGIN = "http://localhost:3000"


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest) -> ActivityStore:
    """The activity table on each backend (the JSON lines file is the node's own)."""
    if request.param == "sqlite":
        return SqliteActivityStore(request.getfixturevalue("db"))
    return PgActivityStore(request.getfixturevalue("pg_database"))


@pytest.fixture
async def pg_other_node(pg_database: PgDatabase) -> AsyncIterator[PgDatabase]:
    """A second node's own pool on ``pg_database``."""
    other = PgDatabase(pg_database.url, pool_size=2)
    await other.open()
    try:
        yield other
    finally:
        await other.close()


@pytest.fixture(params=["sqlite", "postgres"])
def two_stores(request: pytest.FixtureRequest) -> tuple[ActivityStore, ActivityStore]:
    """One activity table, two writers (on PostgreSQL, two nodes)."""
    if request.param == "sqlite":
        db = request.getfixturevalue("db")
        return SqliteActivityStore(db), SqliteActivityStore(db)
    return (PgActivityStore(request.getfixturevalue("pg_database")),
            PgActivityStore(request.getfixturevalue("pg_other_node")))


async def stored_lines(store: ActivityStore) -> list[str]:
    """Every line in the table, oldest first."""
    return [line for _, line in reversed(await store.page(ActivityFilter(), 1000))]


async def _noop(ctx: JobContext) -> Outcome:
    return Outcome()


async def _boom(ctx: JobContext) -> Outcome:
    raise RuntimeError("it broke")


async def _final(ctx: JobContext) -> Outcome:
    raise PermanentFailure("cannot ever work")


async def _half(ctx: JobContext) -> Outcome:
    return Outcome({"email": {"status": "completed"}, "website": {"status": "failed"}},
                   partial=True)


async def _forever(ctx: JobContext) -> Outcome:
    await asyncio.Event().wait()
    return Outcome()


async def _server_bug(request: web.Request) -> web.Response:
    raise RuntimeError("internals")


def _kinds(client: Client) -> None:
    registry = client.app[ENGINE].registry
    for kind in (JobKind("noop", _noop), JobKind("boom", _boom, max_attempts=2),
                 JobKind("final", _final), JobKind("half", _half),
                 JobKind("forever", _forever)):
        registry.register(kind)


@pytest.fixture
async def app_client(aiohttp_client: ClientFactory, tmp_path: Path) -> Client:
    settings = settings_for(tmp_path, job_retry_base=0.01, job_retry_cap=0.05)
    app = create_app(settings)
    setup_routes(app, (Route("GET", "/bug", _server_bug, Role.viewer),))
    client: Client = await aiohttp_client(app)
    _kinds(client)
    return client


def admin(client: Client) -> str:
    return (client.app[SETTINGS].data_dir / "admin.key").read_text().strip()


def table_lines(client: Client) -> list[dict[str, Any]]:
    """The rows as another process reads them, oldest first."""
    with sqlite3.connect(client.app[DATABASE].path) as conn:
        rows = conn.execute("SELECT type, actor, target, line FROM activity ORDER BY id")
        out = []
        for type_, actor, target, line in rows:
            parsed = json.loads(line)
            assert (parsed["type"], parsed["target"]) == (type_, target)
            assert actor == (None if parsed["actor"]["id"] == "system" else parsed["actor"]["id"])
            out.append(parsed)
        return out


def file_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


async def submit(client: Client, key: str, kind: str) -> str:
    response = await client.post("/api/jobs", json={"kind": kind}, headers=auth(key))
    assert response.status == 202, await response.text()
    job_id: str = (await response.json())["job_id"]
    return job_id


async def _jobs(client: Client, key: str) -> dict[str, str]:
    """A job of each ending, a retry by request and a cancel."""
    ids = {kind: await submit(client, key, kind) for kind in ("noop", "boom", "final", "half")}
    for job_id in ids.values():
        await finished(client, job_id)
    retried = await client.post(f"/api/jobs/{ids['final']}/retry", headers=auth(key))
    assert retried.status == 200
    await finished(client, ids["final"])
    ids["forever"] = await submit(client, key, "forever")
    cancel = await client.post(f"/api/jobs/{ids['forever']}/cancel", headers=auth(key))
    assert cancel.status == 200
    return ids


async def _documents(client: Client, key: str) -> None:
    response = await client.post("/api/ingest", json={"title": "Notes", "text": "apples and pears"},
                                 headers=auth(key))
    assert response.status == 202
    await finished(client, (await response.json())["job_id"])
    assert (await client.get("/api/search?q=apples", headers=auth(key))).status == 200
    project = await (await client.post("/api/projects", json={"name": "Fruit"},
                                       headers=auth(key))).json()
    url = f"/api/projects/{project['id']}"
    assert (await client.put(url, json={"name": "Fruits"}, headers=auth(key))).status == 200
    assert (await client.delete(url, headers=auth(key))).status == 200


async def _admin(client: Client, key: str, viewer: str) -> str:
    """Refusals, a 500, keys, cache, queue, a broadcast; returns the created key's secret."""
    assert (await client.get("/api/jobs")).status == 401
    assert (await client.get("/api/jobs", headers=auth("tbe_not-a-real-key"))).status == 401
    assert (await client.post("/api/jobs", json={}, headers=auth(viewer))).status == 403
    assert (await client.get("/bug", headers=auth(viewer))).status == 500
    created = await (await client.post("/admin/keys", json={"name": "ci", "role": "viewer"},
                                       headers=auth(key))).json()
    assert (await client.delete(f"/admin/keys/{created['id']}", headers=auth(key))).status == 200
    for path, body in (("/api/v2/cache/invalidate", {"keys": ["x"]}), ("/api/v2/cache/clear", {}),
                       ("/admin/queue/pause", {}), ("/admin/queue/resume", {}),
                       ("/admin/broadcast", {"data": {"message": "hello"}})):
        response = await client.post(path, json=body, headers=auth(key))
        assert response.status in (200, 202), (path, await response.text())
    client.app[BUS].publish(Event.data(RESTART_REQUESTED, {"reason": "test"}))
    # A restart sooner than the interval: refused by a rate limit (rate.limited).
    (client.app[SETTINGS].data_dir / RESTART_STAMP).write_text(f"{time.time()}\n")
    assert (await client.post("/admin/restart", headers=auth(key))).status == 429
    return str(created["secret"])


async def _critical(client: Client, key: str) -> str:
    """A draft published in an emergency, edited, then rolled back; returns its id."""
    draft = await client.post("/api/v2/content/generate", headers=auth(key), json={
        "title": "Status", "text": "All good.", "channels": ["website"]})
    job = await finished(client, (await draft.json())["job_id"])
    content_id = str(job["results"]["website"]["content_id"])
    publish = await client.post("/api/critical/emergency-publish", headers=auth(key),
                                json={"content_ids": [content_id]})
    await finished(client, (await publish.json())["jobs"][0]["job_id"])
    edit = await client.put(f"/api/v2/content/{content_id}", headers=auth(key),
                            json={"html": "<p>broken</p>"})
    assert edit.status == 200
    rollback = await client.post("/api/critical/rollback", headers=auth(key),
                                 json={"content_id": content_id})
    await finished(client, (await rollback.json())["rolled_back"][0]["republish_job_id"])
    return content_id


async def _sockets(client: Client, key: str) -> None:
    closed = asyncio.get_running_loop().create_future()

    def seen(event: Event) -> None:
        if event.type == WS_CONNECTION and event.body["data"]["action"] == "closed":
            closed.done() or closed.set_result(None)

    unsubscribe = client.app[BUS].subscribe(seen)
    ws = await client.ws_connect("/ws/jobs", headers={"Authorization": f"Bearer {key}"})
    await ws.close()
    async with asyncio.timeout(10):  # the server records the close when its handler ends
        await closed
    unsubscribe()
    with pytest.raises(WSServerHandshakeError):
        await client.ws_connect("/ws/jobs", headers={"Origin": "https://evil.example"})
    with pytest.raises(WSServerHandshakeError):  # a token in the query, refused
        await client.ws_connect("/ws/jobs?token=tbe_query-token-never-logged",
                                headers={"Origin": ORIGIN})
    ws = await client.ws_connect(f"/ws/jobs?token={key}", headers={"Origin": ORIGIN})
    await ws.close()


EXPECTED = {
    "job.submitted", "job.started", "job.completed", "job.partial", "job.failed", "job.dead",
    "job.cancelled", "job.retried", "ingestion.accepted", "ingestion.finished", "query",
    "error", "auth.refused", "rate.limited", "key.created", "key.revoked", "ws.accepted",
    "ws.refused", "ws.closed", "cache.invalidated", "cache.cleared", "queue.paused",
    "queue.resumed",
    "announcement", "restart.requested", "content.published", "critical.emergency_publish",
    "critical.rollback", "project.created", "project.updated", "project.deleted",
}


@pytest.mark.sqlite_only  # reads the SQLite file itself
async def test_every_type_is_in_the_table_and_the_file_without_secrets(
    app_client: Client,
) -> None:
    client = app_client
    key = admin(client)
    _viewer_key, viewer = await client.app[KEYS].create("watcher", Role.viewer)
    ids = await _jobs(client, key)
    await _documents(client, key)
    created_secret = await _admin(client, key, viewer)
    await _sockets(client, key)
    content_id = await _critical(client, key)
    await client.app[ACTIVITY].flush()

    table = table_lines(client)
    in_file = file_lines(client.app[ACTIVITY].file.path)
    assert table == in_file  # the same lines, in the same order
    assert {line["type"] for line in table} >= EXPECTED
    for line in table:
        assert set(line) == {"ts", "type", "actor", "ip", "correlation_id", "target",
                             "outcome", "data"}
    text = client.app[ACTIVITY].file.path.read_text()
    with sqlite3.connect(client.app[DATABASE].path) as conn:
        text += "\n".join(row[0] for row in conn.execute("SELECT line FROM activity"))
    for secret in (key, viewer, created_secret, "tbe_not-a-real-key",
                   "tbe_query-token-never-logged"):
        assert secret not in text
    assert {line["type"] for line in table} == set(TYPES)  # and no type the README lacks
    _check_jobs(table, ids)
    _check_people(table)
    critical = [line for line in table if line["type"].startswith("critical.")]
    assert [(line["type"], line["target"]) for line in critical] == [
        ("critical.emergency_publish", content_id), ("critical.rollback", content_id)]


def _check_jobs(table: list[dict[str, Any]], ids: dict[str, str]) -> None:
    def types(job_id: str) -> list[str]:
        return [line["type"] for line in table if line["target"] == job_id]

    assert types(ids["noop"]) == ["job.submitted", "job.started", "job.completed"]
    assert types(ids["boom"]) == ["job.submitted", "job.started", "job.retried", "job.started",
                                  "job.dead", "error"]
    final = types(ids["final"])
    assert final.count("job.failed") == 2 and "job.retried" in final
    assert types(ids["half"])[-1] == "job.partial"
    assert types(ids["forever"])[-1] == "job.cancelled"
    submitted = next(line for line in table if line["type"] == "job.submitted")
    assert submitted["actor"]["name"] == "admin (first start)" and submitted["correlation_id"]
    # The rest of a job's life is the server's own, however the job reached its worker
    # (handed over at its submission, or claimed): the README's "system".
    ran = {"job.started", "job.completed", "job.dead", "job.partial"}
    actors = {line["actor"]["id"] for line in table if line["type"] in ran}
    assert actors == {"system"}


def _check_people(table: list[dict[str, Any]]) -> None:
    by_type: dict[str, list[dict[str, Any]]] = {}
    for line in table:
        by_type.setdefault(line["type"], []).append(line)
    refused = by_type["auth.refused"]
    assert {line["data"]["status"] for line in refused} == {401, 403}
    assert refused[0]["actor"] == {"id": "127.0.0.1", "name": None}
    assert refused[-1]["actor"]["name"] == "watcher" and refused[-1]["data"]["route"] == "/api/jobs"
    http_error = next(line for line in by_type["error"] if line["data"].get("endpoint") == "/bug")
    assert http_error["data"]["status"] == 500 and http_error["outcome"] == "error"
    assert "internals" not in json.dumps(http_error)
    assert [line["data"]["reason"] for line in by_type["ws.refused"]] == ["origin", "auth"]
    assert by_type["ws.closed"][0]["data"]["code"] == 1000
    assert [line["data"]["name"] for line in by_type["key.created"]] == [
        "admin (first start)", "watcher", "ci"]
    assert by_type["key.created"][-1]["actor"]["name"] == "admin (first start)"


async def test_rotation_keeps_the_files_asked_for(tmp_path: Path) -> None:
    path = tmp_path / "logs" / "activity.jsonl"
    file = JsonLines(path, max_bytes=100, keep=2)
    for n in range(40):
        before = path.stat().st_ino if path.exists() else None
        file.write([json.dumps({"n": n}).encode() + b"\n"])
        if before is not None and path.stat().st_ino != before:  # rotated: renamed, not copied
            assert path.with_name("activity.jsonl.1").stat().st_ino == before
    file.close()
    names = sorted(p.name for p in path.parent.iterdir())
    assert names == ["activity.jsonl", "activity.jsonl.1", "activity.jsonl.2"]
    kept = [json.loads(line)["n"] for name in reversed(names)
            for line in (path.parent / name).read_text().splitlines()]
    assert kept == list(range(40 - len(kept), 40))  # the newest lines, none lost between
    assert all(p.stat().st_size <= 100 for p in path.parent.iterdir())


async def test_a_full_queue_drops_and_counts_and_never_waits(
    store: ActivityStore, tmp_path: Path
) -> None:
    bus = EventBus()
    log = ActivityLog(store, bus, JsonLines(tmp_path / "a.jsonl", max_bytes=1 << 20, keep=1),
                      max_queued=5)
    await log.start()
    try:
        for n in range(1000):  # no await in between: the loop never gets to flush
            bus.publish(Event(QUERY_COMPLETE, {"data": {"query": f"q{n}", "hits": 0}},
                              timestamp=1_765_000_000_123 + n))
        assert (log.received, log.queued, log.dropped) == (1000, 5, 995)
        await log.flush()
        assert log.written == 5 and log.written + log.dropped == 1000
        assert (await log.check()).status == "warn"
        lines = file_lines(tmp_path / "a.jsonl")
        assert [(line["ts"], line["data"]["query"]) for line in lines] == [
            (iso(1_765_000_000_123 + n), f"q{n}") for n in range(5)]
    finally:
        await log.close()


async def test_an_event_that_cannot_be_described_is_dropped_alone(
    store: ActivityStore, tmp_path: Path
) -> None:
    def picky(event: Event, who: Any, cid: str | None) -> list[Any]:
        if event.body["data"]["query"] == "bad":
            raise ValueError("a describer's bug")
        return describe(event, who, cid)

    bus = EventBus()
    log = ActivityLog(store, bus, JsonLines(tmp_path / "a.jsonl", max_bytes=1 << 20, keep=1),
                      describe=picky)
    await log.start()
    for query in ("good", "bad", "fine"):
        bus.publish(Event.data(QUERY_COMPLETE, {"query": query}))
    await log.flush()
    assert (log.written, log.dropped) == (2, 1)
    assert [line["data"]["query"] for line in file_lines(tmp_path / "a.jsonl")] == [
        "good", "fine"]
    await log.close()


async def test_a_line_that_cannot_be_rendered_is_dropped_alone(
    store: ActivityStore, tmp_path: Path
) -> None:
    bus = EventBus()
    log = ActivityLog(store, bus, JsonLines(tmp_path / "a.jsonl", max_bytes=1 << 20, keep=1))
    await log.start()
    try:
        for data in ({"query": "good"}, {"query": "odd", 7: "JSON keys are text"},
                     {"query": "fine", "path": tmp_path}):  # a Path is written as its text
            bus.publish(Event.data(QUERY_COMPLETE, data))
        await log.flush()
        assert (log.written, log.dropped) == (2, 1)
        in_file = file_lines(tmp_path / "a.jsonl")
        assert [line["data"]["query"] for line in in_file] == ["good", "fine"]
        assert in_file[1]["data"]["path"] == str(tmp_path)
        assert [json.loads(line) for line in await stored_lines(store)] == in_file
    finally:
        await log.close()


async def test_two_logs_on_one_table_lose_no_line(
    two_stores: tuple[ActivityStore, ActivityStore], tmp_path: Path
) -> None:
    """Two nodes' logs stamp the same milliseconds and store them at once: every line is
    stored once, and a cursor pages through them all, newest first."""
    at, count = 1_765_000_000_000, 300
    logs = [(EventBus(), store) for store in two_stores]
    nodes = [(bus, ActivityLog(store, bus, JsonLines(tmp_path / f"{n}.jsonl", max_bytes=1 << 20,
                                                     keep=1)))
             for n, (bus, store) in enumerate(logs)]
    for _bus, log in nodes:
        await log.start()
    try:
        for n in range(count):
            for name, (bus, _log) in zip("ab", nodes, strict=True):
                bus.publish(Event(QUERY_COMPLETE, {"data": {"query": f"{name}{n}"}},
                                  timestamp=at + n // 100))
        await asyncio.gather(*(log.flush() for _bus, log in nodes))
        assert [(log.written, log.dropped) for _bus, log in nodes] == [(count, 0)] * 2
        ids, queries, cursor = [], [], None
        while page := await two_stores[1].page(ActivityFilter(types=("query",)), 64, cursor):
            ids += [ident for ident, _line in page]
            queries += [json.loads(line)["data"]["query"] for _ident, line in page]
            cursor = page[-1][0]
    finally:
        for _bus, log in nodes:
            await log.close()
    assert ids == sorted(set(ids), reverse=True) and len(ids) == 2 * count
    for name in "ab":  # each node's lines, oldest first, in the order it wrote them
        assert [q for q in reversed(queries) if q[0] == name] == [
            f"{name}{n}" for n in range(count)]
    # An id moved past another node's stays by its time: 600 lines fit in a millisecond.
    assert all(at <= ident >> SEQ_BITS <= at + 3 for ident in ids)


async def test_a_line_committed_later_follows_the_last_one_seen(
    two_stores: tuple[ActivityStore, ActivityStore]
) -> None:
    """A follower that read node a's newest line then gets node b's, committed after it
    though stamped earlier (b's clock is behind): ids are in commit order."""
    a, b = two_stores
    at, everything = 1_765_000_000_000, ActivityFilter()
    await a.insert([(first_id(at + 5000), "query", None, None, '{"from":"a"}')])
    last_seen = (await b.after(everything, 0, 10))[-1][0]
    await b.insert([(first_id(at), "query", None, None, '{"from":"b"}')])
    followed = await a.after(everything, last_seen, 10)
    assert [line for _ident, line in followed] == ['{"from":"b"}']
    assert followed[0][0] == last_seen + 1


async def test_another_nodes_events_are_that_nodes_lines(
    store: ActivityStore, tmp_path: Path
) -> None:
    """What another node published (the bridge re-publishes it here) is written by that
    node, once: this node writes only its own."""
    bus = EventBus()
    log = ActivityLog(store, bus, JsonLines(tmp_path / "a.jsonl", max_bytes=1 << 20, keep=1))
    await log.start()
    now = now_ms()
    job = Job("job_there", "noop", JobStatus.pending, now, now)
    try:
        for n, (type_, body) in enumerate([
            (QUERY_COMPLETE, {"data": {"query": "there"}}),
            (CACHE_INVALIDATED, {"data": {"keys": ["k"], "cleared": False}}),
        ]):
            bus.publish(RemoteEvent(type_, body, now, None, origin="b/1", seq=n + 1))
        bus.publish(RemoteEvent.of_job(JOB_CREATED, job, now, origin="b/1", seq=3))
        bus.publish(Event.data(QUERY_COMPLETE, {"query": "here"}))
        await log.flush()
        assert (log.received, log.written) == (1, 1)
        assert [json.loads(line)["data"]["query"] for line in await stored_lines(store)] == [
            "here"]
        assert [line["data"]["query"] for line in file_lines(tmp_path / "a.jsonl")] == ["here"]
    finally:
        await log.close()


async def test_rows_older_than_the_retention_are_removed(
    store: ActivityStore, tmp_path: Path
) -> None:
    bus, day = EventBus(), 86_400_000
    log = ActivityLog(store, bus, JsonLines(tmp_path / "a.jsonl", max_bytes=1 << 20, keep=1),
                      retention_days=2)
    await log.start()
    now = time.time_ns() // 1_000_000
    for age in (5, 3, 1, 0):
        bus.publish(Event(QUERY_COMPLETE, {"data": {"query": f"{age}d"}},
                          timestamp=now - age * day))
    await log.flush()
    await log.prune()  # (the flusher may have pruned first: it does after its first batch)
    left = [json.loads(line)["data"]["query"] for line in await stored_lines(store)]
    assert left == ["1d", "0d"]
    await log.close()


async def test_health_detailed_warns_when_lines_were_dropped(
    make_client: ClientFactory
) -> None:
    client = await make_client(activity_queue=1)
    for n in range(3):
        client.app[BUS].publish(Event.data(QUERY_COMPLETE, {"query": f"q{n}"}))
    body = await (await client.get("/health/detailed", headers=auth(admin(client)))).json()
    assert body["components"]["activity"]["status"] == "warn"
    assert "dropped" in body["components"]["activity"]["message"]


async def _queries(client: Client, count: int) -> None:
    for n in range(count):
        client.app[BUS].publish(Event.data(QUERY_COMPLETE, {"query": f"q{n}", "hits": n}))
    await client.app[ACTIVITY].flush()


async def test_api_filters_and_pages_newest_first(client: Client, admin_key: str) -> None:
    _key, viewer = await client.app[KEYS].create("reader", Role.viewer)
    await _queries(client, 7)
    seen, cursor = [], ""
    while True:
        response = await client.get(f"/api/activity?type=query&limit=3&cursor={cursor}",
                                    headers=auth(viewer))
        assert response.status == 200
        page = await response.json()
        seen += [item["data"]["query"] for item in page["activity"]]
        if page["next_cursor"] is None:
            break
        cursor = page["next_cursor"]
    assert seen == [f"q{n}" for n in reversed(range(7))]
    created = await client.get("/api/activity?type=key.created&target=" + _key.id,
                               headers=auth(viewer))
    assert [i["target"] for i in (await created.json())["activity"]] == [_key.id]
    system = await (await client.get("/api/activity?actor=system&type=query",
                                     headers=auth(viewer))).json()
    assert system["count"] == 7
    late = await (await client.get("/api/activity?since=2999-01-01T00:00:00Z",
                                   headers=auth(viewer))).json()
    assert late["activity"] == []
    early = await (await client.get("/api/activity?until=2000-01-01", headers=auth(viewer))).json()
    assert early["activity"] == []


@pytest.mark.parametrize(("query", "status"), [
    ("limit=0", 422), ("limit=x", 422), ("cursor=abc", 422), ("since=yesterday", 422),
    ("type=DROP TABLE", 422), ("since=2025-01-02&until=2025-01-01", 422),
])
async def test_api_refuses_bad_parameters(client: Client, admin_key: str, query: str,
                                          status: int) -> None:
    response = await client.get(f"/api/activity?{query}", headers=auth(admin_key))
    assert response.status == status
    assert (await response.json())["error"]["code"] == "invalid"


async def test_error_events_reach_the_dashboards(app_client: Client) -> None:
    key = admin(app_client)
    ws = await app_client.ws_connect("/ws/dashboard", headers={"Authorization": f"Bearer {key}"})
    assert (await ws.receive_json())["type"] == "connection_ack"
    assert (await app_client.get("/bug", headers=auth(key))).status == 500
    job_id = await submit(app_client, key, "final")
    errors: list[dict[str, Any]] = []
    async with asyncio.timeout(10):
        while len(errors) < 2:
            message = await ws.receive_json()
            if message["type"] == "error":
                errors.append(message)
    assert errors[0]["data"]["endpoint"] == "/bug" and errors[0]["data"]["error_type"]
    assert not {"ip", "key_id", "key_name"} & set(errors[0]["data"])  # every dashboard sees it
    assert errors[1]["data"]["job_id"] == job_id and "cannot ever work" in errors[1]["data"][
        "message"]
    assert all(set(e) == {"type", "data", "timestamp"} for e in errors)
    await ws.close()


def _cli(data_dir: Path, *args: str, database_url: str = "",
         **kwargs: Any) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "toombos_edge", "activity", "--data-dir", str(data_dir),
               *args]
    env = {**clean_env(), "TOOMBOS_DATABASE_URL": database_url}
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env, **kwargs)


async def test_cli_prints_and_follows(client: Client, admin_key: str, tmp_path: Path,
                                      settings: Settings) -> None:
    await _queries(client, 4)
    data_dir, url = tmp_path / "data", settings.database_url
    printed = await asyncio.to_thread(_cli(data_dir, "--limit", "3", "--type", "query",
                                           database_url=url)
                                      .communicate, None, 60)
    assert [json.loads(line)["data"]["query"] for line in printed[0].splitlines()] == [
        "q1", "q2", "q3"]
    follower = _cli(data_dir, "--limit", "0", "--follow", database_url=url)
    try:
        assert follower.stderr is not None
        started = await asyncio.wait_for(asyncio.to_thread(follower.stderr.readline), 60)
        assert started.startswith("following")
        client.app[BUS].publish(Event.data(QUERY_COMPLETE, {"query": "fresh"}))
        await client.app[ACTIVITY].flush()
        assert follower.stdout is not None
        line = await asyncio.wait_for(asyncio.to_thread(follower.stdout.readline), 60)
        assert json.loads(line)["data"]["query"] == "fresh"
    finally:
        follower.send_signal(signal.SIGINT)
        await asyncio.to_thread(follower.communicate, None, 30)  # closes its pipes too
    assert follower.returncode == 0



def test_the_readme_documents_every_type() -> None:
    text = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    section = text[text.index("## Activity log"):text.index("## Documents and search")]
    assert [t for t in TYPES if f"`{t}`" not in section] == []
