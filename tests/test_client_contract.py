"""The public Toombos dashboard against this server, called the way that client calls.

Every request carries ``Content-Type: application/json`` (GETs too) and ``Authorization:
Bearer``; every answer is parsed as JSON; the field names and types asserted are the ones
CLIENT-CONTRACT.md says the client reads. /metrics (JSON) is not served yet and is not
tested here.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp import ClientWebSocketResponse, web
from aiohttp.test_utils import TestServer
from conftest import Client, ClientFactory, ServerProcess, finished
from ws_support import admin_secret, until_type

from toombos_edge.appkeys import ENGINE, KEYS
from toombos_edge.keys import Role

pytestmark = pytest.mark.backends

ORIGIN = "http://localhost:3000"
CHANNELS = ["email", "website", "social_twitter", "social_linkedin", "social_facebook"]
RESULT_KEYS = {"email", "website", "twitter", "linkedin", "facebook"}
STATUSES = {"pending", "in_progress", "completed", "failed", "partial", "cancelled"}
OPTIONAL_TIMES = ("scheduled_for", "started_at", "completed_at")
TEXT = "We shipped offline sync today: edits made on a plane now merge cleanly. " * 12


class Dashboard:
    """What the dashboard's API client does: JSON headers always, a key when it has one."""

    def __init__(self, client: Client, key: str | None) -> None:
        self.client, self.key = client, key

    def headers(self, correlation_id: str | None = None) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        if self.key:
            headers["Authorization"] = f"Bearer {self.key}"
        if correlation_id:
            headers["X-Correlation-ID"] = correlation_id
        return headers

    async def call(self, method: str, path: str, body: Any = None,
                   correlation_id: str | None = None) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body)
        response = await self.client.request(method, path, data=data,
                                              headers=self.headers(correlation_id))
        return response.status, json.loads(await response.read())


@pytest.fixture
async def dashboard(make_client: ClientFactory) -> Dashboard:
    """The server as the dashboard's deployment runs it: origin-checked WebSockets, no
    social webhooks (their posts are kept as drafts), retries without backoff."""
    client = await make_client(ws_auth="origin", job_retry_base=0)
    _key, operator = await client.app[KEYS].create("dashboard", Role.operator)
    return Dashboard(client, operator)


def is_iso(value: Any) -> bool:
    return isinstance(value, str) and value.endswith("Z") and "T" in value


def assert_job(job: dict[str, Any]) -> None:
    """The job object's fields with the types the client reads."""
    assert isinstance(job["job_id"], str) and job["job_id"]
    assert isinstance(job["document_id"], str)  # its filters lower-case it: never null
    assert isinstance(job["channels"], list)
    assert all(isinstance(channel, str) for channel in job["channels"])
    assert job["status"] in STATUSES
    assert is_iso(job["created_at"]) and is_iso(job["updated_at"])
    for name in OPTIONAL_TIMES:
        assert job[name] is None or is_iso(job[name]), name
    assert isinstance(job["results"], dict) and isinstance(job["errors"], list)
    assert isinstance(job["metadata"], dict)
    assert job["correlation_id"] is None or isinstance(job["correlation_id"], str)
    for channel, result in job["results"].items():
        assert channel in RESULT_KEYS
        assert_result(result)


def assert_result(result: dict[str, Any]) -> None:
    # draft: made but not sent, no sink being configured for its channel (the client shows
    # the status it reads; it needs a string there, not one of a fixed set).
    assert result["status"] in {"success", "failed", "draft"}
    assert isinstance(result["sent"], bool) and is_iso(result["timestamp"])
    for name in ("content_id", "url", "error"):
        assert result[name] is None or isinstance(result[name], str), name


def assert_error(body: Any) -> None:
    """The client shows ``detail`` (or ``message``) of any error body."""
    assert isinstance(body["detail"], str) and body["detail"]
    assert body["error"]["message"] == body["detail"]


async def ws_open(dashboard: Dashboard) -> ClientWebSocketResponse:
    """``new WebSocket(ws://host/ws/jobs)`` from the dashboard's page: no token, no
    subprotocol, the browser's Origin."""
    return await dashboard.client.ws_connect("/ws/jobs", origin=ORIGIN)


async def test_health_and_ready(dashboard: Dashboard) -> None:
    status, body = await dashboard.call("GET", "/health")
    assert status == 200 and body["status"] in {"healthy", "degraded", "unhealthy"}
    assert is_iso(body["timestamp"]) and isinstance(body["version"], str)
    assert isinstance(body["uptime"], int | float)
    for name in ("database", "cache", "external_services", "disk", "memory"):
        check = body["checks"][name]
        assert check["status"] in {"pass", "fail", "warn"} and isinstance(check["message"], str)
        assert isinstance(check["latency_ms"], int | float)
    assert await dashboard.call("GET", "/ready") == (200, {"ready": True})


async def test_generate_publishes_per_channel_and_the_socket_tells(dashboard: Dashboard) -> None:
    ws = await ws_open(dashboard)
    body = {"channels": CHANNELS, "content_type": "blog", "template_style": "minimal",
            "metadata": {"campaign": "spring"}, "title": "Offline sync", "text": TEXT}
    status, job = await dashboard.call("POST", "/api/v2/content/sync", body, "dash-7")
    assert status == 202
    assert_job(job)
    assert job["channels"] == CHANNELS and job["correlation_id"] == "dash-7"
    assert job["metadata"] == {"campaign": "spring"}
    created = await until_type(ws, "job_created")
    assert created["job"]["job_id"] == job["job_id"] and is_iso(created["timestamp"])
    await ws.send_json({"type": "subscribe", "job_id": job["job_id"]})  # the client may
    assert_job((await until_type(ws, "job_update"))["job"])
    done = await until_type(ws, "job_completed", within=20)
    assert_job(done["job"])
    assert done["job"]["status"] == "completed"  # no social webhooks here: drafts, no failure
    results = done["job"]["results"]
    assert set(results) == RESULT_KEYS
    assert results["email"]["status"] == results["website"]["status"] == "success"
    assert results["website"]["url"].endswith("/site/offline-sync")
    for channel in ("twitter", "linkedin", "facebook"):
        draft = results[channel]
        assert (draft["status"], draft["sent"], draft["error"]) == ("draft", False, None)
        assert draft["content_id"] and "TOOMBOS_WEBHOOK_" in draft["reason"]
    status, again = await dashboard.call("GET", f"/api/v2/jobs/{job['job_id']}")
    assert status == 200 and again["results"] == results
    await ws.close()


async def test_a_job_that_fails_everywhere_is_a_job_failed_event(
    make_client: ClientFactory
) -> None:
    async def refuse(request: web.Request) -> web.Response:
        return web.json_response({"error": "account suspended"}, status=403)

    receiver = web.Application()
    receiver.router.add_post("/twitter", refuse)
    async with TestServer(receiver, host="127.0.0.1") as hook:
        client = await make_client(ws_auth="origin", job_retry_base=0,
                                   webhook_twitter=str(hook.make_url("/twitter")))
        _key, operator = await client.app[KEYS].create("dashboard", Role.operator)
        dashboard = Dashboard(client, operator)
        ws = await ws_open(dashboard)
        status, job = await dashboard.call("POST", "/api/v2/content/sync", {
            "channels": ["social_twitter"], "title": "Nowhere", "text": TEXT})
        assert status == 202
        failed = await until_type(ws, "job_failed", within=20)
    assert failed["job"]["job_id"] == job["job_id"] and is_iso(failed["timestamp"])
    assert_job(failed["job"])
    assert failed["job"]["status"] == "failed"
    # the webhook refused the post (403): a retry cannot cure that, so the first attempt
    # is the last, and the per-channel results are kept
    twitter = failed["job"]["results"]["twitter"]
    assert twitter["status"] == "failed" and "webhook answered 403" in twitter["error"]
    errors = failed["job"]["errors"]
    assert len(errors) == failed["job"]["attempts"] == 1
    assert "twitter" in errors[-1]["error"] and is_iso(errors[-1]["at"])
    await ws.close()


async def test_the_older_channel_names_and_a_dry_run(dashboard: Dashboard) -> None:
    body = {"channels": ["twitter", "linkedin", "facebook"], "dry_run": True,
            "title": "Dry", "text": TEXT, "schedule_time": None}
    status, job = await dashboard.call("POST", "/api/v2/content/sync", body)
    assert status == 202 and job["channels"] == CHANNELS[2:]
    done = await finished(dashboard.client, job["job_id"])
    assert_job(done)
    assert done["status"] == "completed" and set(done["results"]) == RESULT_KEYS - {"email",
                                                                                     "website"}


async def test_list_get_retry_and_cancel(dashboard: Dashboard) -> None:
    engine = dashboard.client.app[ENGINE]
    engine.pause()
    ids = []
    for index in range(3):
        status, job = await dashboard.call("POST", "/api/v2/content/sync", {
            "channels": ["website"], "title": f"Post {index}", "text": TEXT})
        assert status == 202
        ids.append(job["job_id"])
    status, page = await dashboard.call("GET", "/api/v2/jobs?status=pending&limit=2&offset=1")
    assert status == 200 and page["total"] == 3 and page["page_size"] == 2
    assert isinstance(page["page"], int) and len(page["jobs"]) == 2
    for job in page["jobs"]:
        assert_job(job)
        assert job["status"] == "pending"
    status, page = await dashboard.call("GET", "/api/v2/jobs?limit=500")
    assert status == 200 and page["page_size"] == 500 and len(page["jobs"]) == 3
    status, error = await dashboard.call("GET", "/api/v2/jobs?limit=501")
    assert 400 <= status < 500
    assert_error(error)

    status, cancelled = await dashboard.call("DELETE", f"/api/v2/content/sync/{ids[0]}")
    assert status == 200 and cancelled["cancelled"] is True
    status, error = await dashboard.call("DELETE", f"/api/v2/content/sync/{ids[0]}")
    assert status == 409
    assert_error(error)
    status, retried = await dashboard.call("POST", f"/api/v2/jobs/{ids[0]}/retry")
    assert status == 200
    assert_job(retried)
    assert retried["status"] == "pending" and isinstance(retried["job_id"], str)
    status, error = await dashboard.call("GET", "/api/v2/jobs/job_00000000000000000000000000")
    assert status == 404
    assert_error(error)
    engine.resume()


async def test_a_scheduled_generate_waits_for_its_time(dashboard: Dashboard) -> None:
    status, job = await dashboard.call("POST", "/api/v2/content/sync", {
        "channels": ["website"], "title": "Later", "text": TEXT,
        "schedule_time": "2099-01-02T03:04:05Z"})
    assert status == 202
    assert_job(job)
    assert job["status"] == "pending" and job["scheduled_for"] == "2099-01-02T03:04:05.000Z"
    status, error = await dashboard.call("POST", "/api/v2/content/sync", {
        "channels": ["website"], "title": "Later", "text": TEXT, "schedule_time": "soon"})
    assert status == 422
    assert_error(error)


async def test_preview_of_a_document_and_validate(dashboard: Dashboard) -> None:
    status, doc = await dashboard.call("POST", "/api/documents",
                                       {"title": "Launch notes", "text": TEXT})
    assert status == 201
    status, preview = await dashboard.call("GET", f"/api/v1/preview?document_id={doc['id']}")
    assert status == 200 and isinstance(preview, dict)
    assert preview["document_id"] == doc["id"] and set(preview["previews"]) == RESULT_KEYS
    status, error = await dashboard.call("GET", "/api/v1/preview?document_id=doc_nothing")
    assert status == 404
    assert_error(error)

    status, checked = await dashboard.call("POST", "/api/v2/content/validate", {
        "content": TEXT, "content_type": "announcement", "strict": True})
    assert status == 200 and isinstance(checked["is_valid"], bool)
    assert checked["content_type"] == "announcement"
    assert isinstance(checked["issues"], list) and isinstance(checked["warnings"], list)
    meta = checked["enhanced_metadata"]
    assert isinstance(meta["word_count"], int) and meta["word_count"] > 100
    assert isinstance(meta["reading_time"], int | float)
    assert isinstance(meta["seo_score"], int | float)
    assert isinstance(meta["recommended_channels"], list)


async def test_cache_stats_invalidate_and_clear(dashboard: Dashboard) -> None:
    admin = Dashboard(dashboard.client, admin_secret(dashboard.client))
    status, stats = await dashboard.call("GET", "/api/v2/cache/stats")
    assert status == 200
    for name in ("total_keys", "hits", "misses", "evictions"):
        assert isinstance(stats[name], int), name
    for name in ("hit_rate", "miss_rate", "memory_usage_mb", "avg_ttl_seconds",
                 "oldest_key_age_seconds"):
        assert isinstance(stats[name], int | float), name
    local = stats["cache_targets"]["local"]
    assert isinstance(local["enabled"], bool) and isinstance(local["total_keys"], int)
    assert isinstance(local["hit_rate"], int | float)
    assert isinstance(local["memory_mb"], int | float)
    status, gone = await admin.call("POST", "/api/v2/cache/invalidate",
                                    {"cache_keys": ["a"], "pattern": "render:*", "tags": ["t"]})
    assert status == 200 and isinstance(gone["invalidated"], int)
    assert isinstance(gone["targets"], list) and is_iso(gone["timestamp"])
    status, cleared = await admin.call("POST", "/api/v2/cache/clear")
    assert status == 200 and cleared["cleared"] is True


async def test_batch_generate(dashboard: Dashboard) -> None:
    requests = [{"channels": ["website"], "title": f"Batch {i}", "text": TEXT} for i in range(2)]
    status, created = await dashboard.call("POST", "/api/v2/batch/generate", {
        "requests": requests, "parallel": False, "fail_fast": True})
    assert status == 202 and len(created["jobs"]) == 2
    for job in created["jobs"]:
        assert_job(job)
    status, error = await dashboard.call("POST", "/api/v2/batch/generate", {
        "requests": [{"channels": ["carrier_pigeon"]}], "parallel": True, "fail_fast": True})
    assert status == 422
    assert_error(error)


async def test_errors_are_json_with_a_detail(dashboard: Dashboard) -> None:
    anonymous = Dashboard(dashboard.client, None)
    for method, path in (("GET", "/api/v2/jobs"), ("POST", "/api/v2/content/sync")):
        status, body = await anonymous.call(method, path, {} if method == "POST" else None)
        assert status == 401
        assert_error(body)
    status, body = await dashboard.call("POST", "/api/v2/content/sync", {"channels": ["fax"]})
    assert status == 422
    assert_error(body)


JOB_ANALYTICS = {"total_jobs", "completed_jobs", "failed_jobs", "pending_jobs",
                 "in_progress_jobs", "cancelled_jobs", "success_rate",
                 "avg_processing_time_seconds", "jobs_by_channel", "jobs_by_status",
                 "jobs_over_time"}
PERFORMANCE = {"avg_response_time_ms", "p95_response_time_ms", "p99_response_time_ms",
               "error_rate", "success_rate"}


def assert_job_analytics(body: dict[str, Any]) -> None:
    assert set(body) >= JOB_ANALYTICS, JOB_ANALYTICS - set(body)
    for name in JOB_ANALYTICS - {"jobs_by_channel", "jobs_by_status", "jobs_over_time"}:
        assert isinstance(body[name], int | float) and not isinstance(body[name], bool), name
    for mapping in (body["jobs_by_channel"], body["jobs_by_status"]):
        assert all(isinstance(n, int) for n in mapping.values())
    for point in body["jobs_over_time"]:
        assert is_iso(point["timestamp"]) and isinstance(point["count"], int)


async def test_analytics_as_the_analytics_page_asks(dashboard: Dashboard) -> None:
    """``api.getAnalytics({start_date, end_date: toISOString(), granularity})`` for each of
    the page's ranges, and the job analytics path."""
    status, job = await dashboard.call("POST", "/api/v2/content/sync", {
        "channels": ["email", "website"], "title": "Counted", "text": TEXT})
    assert status == 202
    await finished(dashboard.client, job["job_id"])
    end = datetime.now(UTC)
    for days, granularity in ((1, "hour"), (7, "day"), (30, "day")):
        start = (end - timedelta(days=days)).isoformat(timespec="milliseconds")
        query = (f"start_date={start.replace('+00:00', 'Z')}&end_date="
                 f"{end.isoformat(timespec='milliseconds').replace('+00:00', 'Z')}"
                 f"&granularity={granularity}")
        status, body = await dashboard.call("GET", f"/api/v2/analytics?{query}")
        assert status == 200, body
        assert {"job_analytics", "performance_metrics", "channel_performance",
                "recent_activity"} <= set(body)
        assert_job_analytics(body["job_analytics"])
        assert body["job_analytics"]["total_jobs"] == 1
        assert body["job_analytics"]["jobs_by_channel"] == {"email": 1, "website": 1}
        assert set(body["performance_metrics"]) == PERFORMANCE
        assert all(isinstance(v, int | float) for v in body["performance_metrics"].values())
        for channel in body["channel_performance"].values():
            assert set(channel) == {"total_jobs", "success_rate", "avg_processing_time_seconds"}
        assert set(body["recent_activity"]) == {"last_24h", "last_7d", "last_30d"}
        assert all(isinstance(n, int) for n in body["recent_activity"].values())
        status, jobs = await dashboard.call("GET", f"/api/v2/analytics/jobs?{query}")
        assert status == 200
        assert_job_analytics(jobs)
    status, error = await dashboard.call("GET", "/api/v2/analytics?start_date=last+week")
    assert status == 422 and "start_date" in error["detail"]
    assert_error(error)


# --- CORS, on a real server -----------------------------------------------------------------

CONTRACT_CALLS = (
    ("GET", "/health"), ("GET", "/ready"), ("POST", "/api/v2/content/sync"),
    ("GET", "/api/v1/preview"), ("POST", "/api/v2/content/validate"),
    ("GET", "/api/v2/jobs"), ("GET", "/api/v2/jobs/job_x"),
    ("DELETE", "/api/v2/content/sync/job_x"), ("POST", "/api/v2/jobs/job_x/retry"),
    ("GET", "/api/v2/cache/stats"), ("POST", "/api/v2/cache/invalidate"),
    ("POST", "/api/v2/cache/clear"), ("POST", "/api/v2/batch/generate"),
    ("GET", "/api/v2/analytics"), ("GET", "/api/v2/analytics/jobs"),
)


def raw_request(method: str, url: str, headers: dict[str, str]) -> tuple[int, Any, bytes]:
    request = urllib.request.Request(url, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers, exc.read()


def test_cors_preflight_from_the_dashboard_origin(
    server_process: Callable[..., ServerProcess]
) -> None:
    server = server_process()
    key = server.admin_key()
    for method, path in CONTRACT_CALLS:
        status, headers, _ = raw_request("OPTIONS", server.base + path, {
            "Origin": ORIGIN, "Access-Control-Request-Method": method,
            "Access-Control-Request-Headers": "authorization,content-type,x-correlation-id"})
        assert status == 204, (method, path, status)
        assert headers["Access-Control-Allow-Origin"] == ORIGIN
        assert method in headers["Access-Control-Allow-Methods"]
        allowed = headers["Access-Control-Allow-Headers"].lower()
        assert {"authorization", "content-type", "x-correlation-id"} <= {
            name.strip() for name in allowed.split(",")}
    status, headers, body = raw_request("GET", server.base + "/api/v2/jobs", {
        "Origin": ORIGIN, "Content-Type": "application/json", "X-Correlation-ID": "dash-cors",
        "Authorization": f"Bearer {key}"})
    assert status == 200 and json.loads(body)["jobs"] == []
    assert headers["Access-Control-Allow-Origin"] == ORIGIN
    assert headers["X-Correlation-ID"] == "dash-cors"
    assert "X-Correlation-ID" in headers["Access-Control-Expose-Headers"]
    # Errors too: without the CORS header the browser would hide the JSON detail it shows.
    status, headers, body = raw_request("GET", server.base + "/api/v2/jobs/job_x", {
        "Origin": ORIGIN, "Content-Type": "application/json"})
    assert status == 401 and headers["Access-Control-Allow-Origin"] == ORIGIN
    assert json.loads(body)["detail"]
