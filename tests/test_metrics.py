"""GET /metrics and /api/metrics through the real app: negotiation, roles, promtool, and
counters that move when requests, jobs and WebSockets happen."""

from __future__ import annotations

import re
import subprocess
import urllib.request
from collections.abc import Awaitable, Callable
from pathlib import Path

import orjson
import prometheus_client
import pytest
from conftest import Client, ClientFactory, ServerProcess, auth, http
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_om
from prometheus_client.parser import text_string_to_metric_families as parse_text
from support import eventually_async
from ws_support import TIMEOUT, admin_secret, upgrade

from toombos_edge.appkeys import ACTIVITY, BUS, CACHE, ENGINE, HUB, METRICS
from toombos_edge.events import JOB_COMPLETED, JOB_CREATED, Event
from toombos_edge.events_wire import RemoteEvent
from toombos_edge.ids import now_ms
from toombos_edge.jobs.kinds import JobContext, JobKind
from toombos_edge.records.job import Job, JobStatus

pytestmark = pytest.mark.backends

MakeKey = Callable[[str], Awaitable[str]]

#: The three clients of /metrics, with exactly what each sends.
PROMETHEUS = {"Accept": "application/openmetrics-text;version=1.0.0,"
                        "text/plain;version=0.0.4;q=0.5,*/*;q=0.1"}
CURL = {"Accept": "*/*"}
TOOMBOS_CLIENT = {"Accept": "*/*", "Content-Type": "application/json"}

#: CLIENT-CONTRACT.md, "metrics": every field the dashboard reads, with its JSON type.
CONTRACT_FIELDS: dict[str, type | tuple[type, ...]] = {
    "requests_total": int,
    "requests_per_second": (int, float),
    "avg_response_time_ms": (int, float),
    "error_rate": (int, float),
    "cache_hit_rate": (int, float),
    "active_jobs": int,
    "queue_size": int,
}
SEED_GAUGES = ("app_uptime_seconds", "app_cpu_usage_percent", "app_memory_usage_percent")

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def noop(ctx: JobContext) -> None:
    return None


async def boom(ctx: JobContext) -> None:
    raise ValueError("no good")


@pytest.fixture
async def viewer(client: Client, make_key: MakeKey) -> dict[str, str]:
    return auth(await make_key("viewer"))


@pytest.fixture
async def operator(client: Client, make_key: MakeKey) -> dict[str, str]:
    kinds = client.app[ENGINE].registry
    kinds.register(JobKind("noop", noop))
    kinds.register(JobKind("boom", boom, max_attempts=1))
    return auth(await make_key("operator"))


async def scrape_text(client: Client, headers: dict[str, str]) -> str:
    response = await client.get("/metrics", headers={**CURL, **headers})
    assert response.status == 200, await response.text()
    return await response.text()


def samples(text: str) -> Samples:
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in parse_text(text) for s in family.samples}


def value(found: Samples, name: str, **labels: str) -> float:
    return found.get((name, frozenset(labels.items())), 0.0)


async def run_jobs(client: Client, operator: dict[str, str]) -> None:
    for kind in ("noop", "noop", "boom"):
        response = await client.post("/api/jobs", json={"kind": kind}, headers=operator)
        assert response.status == 202, await response.text()
    await client.app[ENGINE].join()


# -- negotiation ---------------------------------------------------------------------------


async def test_prometheus_gets_openmetrics(client: Client, viewer: dict[str, str]) -> None:
    response = await client.get("/metrics", headers={**PROMETHEUS, **viewer})
    body = await response.text()
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("application/openmetrics-text")
    assert "version=1.0.0" in response.headers["Content-Type"]
    assert body.endswith("# EOF\n")
    names = {family.name for family in parse_om(body)}
    assert set(SEED_GAUGES) <= names
    assert {"toombos_http_requests", "process_cpu_seconds"} <= names


async def test_curl_and_browser_fetch_get_the_text_format(
    client: Client, viewer: dict[str, str]
) -> None:
    response = await client.get("/metrics", headers={**CURL, **viewer})
    assert response.status == 200
    assert response.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    assert "Accept" in response.headers["Vary"]
    found = samples(await response.text())
    for gauge in SEED_GAUGES:
        assert (gauge, frozenset()) in found
    assert value(found, "app_uptime_seconds") > 0
    assert 0 <= value(found, "app_memory_usage_percent") <= 100


async def test_a_scraper_without_openmetrics_gets_the_text_format(
    client: Client, viewer: dict[str, str]
) -> None:
    older = {"Accept": "text/plain;version=0.0.4;q=1,*/*;q=0.1"}  # Prometheus before 2.5
    response = await client.get("/metrics", headers={**older, **viewer})
    assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    assert "# EOF" not in await response.text()


async def test_the_toombos_client_gets_the_contract_json(
    client: Client, viewer: dict[str, str]
) -> None:
    await client.get("/health")
    response = await client.get("/metrics", headers={**TOOMBOS_CLIENT, **viewer})
    assert response.status == 200
    assert response.headers["Content-Type"] == "application/json"
    body = orjson.loads(await response.read())
    for name, kind in CONTRACT_FIELDS.items():
        assert isinstance(body[name], kind) and not isinstance(body[name], bool), name
    assert set(body) == set(CONTRACT_FIELDS) | set(SEED_GAUGES)
    assert body["requests_total"] >= 1  # the /health above
    assert 0 <= body["error_rate"] <= 1 and 0 <= body["cache_hit_rate"] <= 1
    assert body["avg_response_time_ms"] > 0


async def test_the_dashboard_origin_passes_cors_for_the_json(
    client: Client, viewer: dict[str, str]
) -> None:
    origin = {"Origin": "http://localhost:3000"}
    preflight = await client.options("/metrics", headers={
        **origin, "Access-Control-Request-Method": "GET",
        "Access-Control-Request-Headers": "authorization,content-type"})
    assert preflight.status == 204
    assert preflight.headers["Access-Control-Allow-Origin"] == origin["Origin"]
    response = await client.get("/metrics", headers={**TOOMBOS_CLIENT, **viewer, **origin})
    assert response.headers["Access-Control-Allow-Origin"] == origin["Origin"]
    assert set(CONTRACT_FIELDS) <= set(orjson.loads(await response.read()))


async def test_api_metrics_is_json_whatever_is_asked(
    client: Client, viewer: dict[str, str]
) -> None:
    for headers in (PROMETHEUS, CURL, TOOMBOS_CLIENT):
        response = await client.get("/api/metrics", headers={**headers, **viewer})
        assert response.status == 200
        assert set(CONTRACT_FIELDS) <= set(orjson.loads(await response.read()))


async def test_json_in_accept_also_gets_json(client: Client, viewer: dict[str, str]) -> None:
    response = await client.get("/metrics", headers={"Accept": "application/json", **viewer})
    assert set(CONTRACT_FIELDS) <= set(orjson.loads(await response.read()))


# -- who may read it -----------------------------------------------------------------------


async def test_metrics_need_a_viewer_key_by_default(client: Client) -> None:
    for path in ("/metrics", "/api/metrics"):
        response = await client.get(path)
        assert response.status == 401
        assert "detail" in await response.json()


async def test_metrics_public_opens_only_the_scrape_path(
    make_client: ClientFactory
) -> None:
    client = await make_client(metrics_public="true")
    response = await client.get("/metrics", headers=PROMETHEUS)
    assert response.status == 200
    assert "app_uptime_seconds" in await response.text()
    assert (await client.get("/api/metrics")).status == 401


def test_a_real_server_opened_with_the_flag_serves_scrapers_without_a_key(
    server_process: Callable[..., ServerProcess],
) -> None:
    server = server_process("--metrics-public", "true")
    assert http("GET", server.base + "/health")[0] == 200
    request = urllib.request.Request(server.base + "/metrics", headers=CURL)
    with urllib.request.urlopen(request, timeout=5) as response:
        found = samples(response.read().decode())
    assert value(found, "toombos_http_requests_total", method="GET", route="/health",
                 status="200") >= 1
    assert value(found, "process_resident_memory_bytes") > 0
    assert http("GET", server.base + "/api/metrics")[0] == 401


# -- what it counts ------------------------------------------------------------------------


async def test_requests_are_counted_by_route_template_never_the_raw_path(
    client: Client, viewer: dict[str, str]
) -> None:
    for job_id in ("job_one", "job_two"):
        assert (await client.get(f"/api/jobs/{job_id}", headers=viewer)).status == 404
    assert (await client.get("/no/such/path/abc123")).status == 404
    assert (await client.get("/api/jobs", headers=viewer)).status == 200
    assert (await client.get("/api/jobs")).status == 401
    text = await scrape_text(client, viewer)
    found = samples(text)
    name = "toombos_http_requests_total"
    assert value(found, name, method="GET", route="/api/jobs/{job_id}", status="404") == 2
    assert value(found, name, method="*", route="unmatched", status="404") == 1
    assert value(found, name, method="GET", route="/api/jobs", status="200") == 1
    assert value(found, name, method="GET", route="/api/jobs", status="401") == 1
    assert value(found, "toombos_http_request_duration_seconds_count",
                 method="GET", route="/api/jobs/{job_id}", status="404") == 2
    assert "job_one" not in text and "abc123" not in text


async def test_counters_move_with_requests_jobs_and_sockets(
    client: Client, viewer: dict[str, str], operator: dict[str, str]
) -> None:
    before = samples(await scrape_text(client, viewer))
    await run_jobs(client, operator)
    assert await client.app[CACHE].get("never-set") is None
    ws = await client.ws_connect(f"/ws/dashboard?token={admin_secret(client)}")
    assert (await ws.receive_json(timeout=5))["type"] == "connection_ack"
    refused = await client.get("/ws/jobs", headers=upgrade(Origin="http://evil.example"))
    assert refused.status == 403
    during = samples(await scrape_text(client, viewer))

    def moved(name: str, **labels: str) -> float:
        return value(during, name, **labels) - value(before, name, **labels)

    assert moved("toombos_http_requests_total", method="POST", route="/api/jobs",
                 status="202") == 3
    assert moved("toombos_http_requests_total", method="GET", route="/metrics",
                 status="200") == 1
    assert moved("toombos_jobs_submitted_total", kind="noop") == 2
    assert moved("toombos_jobs_submitted_total", kind="boom") == 1
    assert moved("toombos_jobs_finished_total", kind="noop", outcome="completed") == 2
    assert moved("toombos_jobs_finished_total", kind="boom", outcome="failed") == 1
    assert moved("toombos_job_run_seconds_count", kind="noop") == 2
    assert moved("toombos_job_queue_wait_seconds_count", kind="boom") == 1
    assert moved("toombos_job_attempts_started_total") == 3
    assert moved("toombos_db_commit_seconds_count") >= 1
    assert moved("toombos_db_commit_batch_size_sum") >= 3  # at least the three inserts
    assert moved("toombos_cache_misses_total") == 1
    assert value(during, "toombos_websocket_connections", endpoint="dashboard") == 1
    assert moved("toombos_websocket_accepted_total") == 1
    assert moved("toombos_websocket_messages_sent_total") >= 1  # the ack, at least
    assert moved("toombos_websocket_refused_total", reason="origin") == 1
    assert value(during, "toombos_jobs_running") == 0
    # The depth counts pending rows as of the engine's last once-a-second count.
    assert value(during, "toombos_job_queue_depth") == client.app[ENGINE].stats()["queue_depth"]

    await ws.close()
    hub = client.app[HUB]
    await eventually_async(lambda: not hub.sockets.all, TIMEOUT)
    after = samples(await scrape_text(client, viewer))
    assert value(after, "toombos_websocket_connections", endpoint="dashboard") == 0
    assert value(after, "toombos_websocket_closed_total") == 1


async def test_another_nodes_jobs_are_counted_by_that_node(
    client: Client, viewer: dict[str, str]
) -> None:
    """The job counters count the jobs this node published; another node's, carried here by
    the bridge, are that node's (the sum over the nodes counts each job once)."""
    now = now_ms()
    job = Job("job_elsewhere", "far", JobStatus.completed, now - 50, now, started_at=now - 20,
              completed_at=now)
    bus = client.app[BUS]
    for seq, type_ in enumerate((JOB_CREATED, JOB_COMPLETED), start=1):
        bus.publish(RemoteEvent.of_job(type_, job, now, origin="b/1", seq=seq))
    there = samples(await scrape_text(client, viewer))
    assert value(there, "toombos_jobs_submitted_total", kind="far") == 0
    assert value(there, "toombos_jobs_finished_total", kind="far", outcome="completed") == 0
    assert value(there, "toombos_job_run_seconds_count", kind="far") == 0
    for type_ in (JOB_CREATED, JOB_COMPLETED):  # the same job, published here
        bus.publish(Event(type_, job))
    here = samples(await scrape_text(client, viewer))
    assert value(here, "toombos_jobs_submitted_total", kind="far") == 1
    assert value(here, "toombos_jobs_finished_total", kind="far", outcome="completed") == 1
    assert value(here, "toombos_job_run_seconds_count", kind="far") == 1


async def test_a_paused_queue_shows_its_backlog(
    client: Client, viewer: dict[str, str], operator: dict[str, str]
) -> None:
    admin = auth(admin_secret(client))
    assert (await client.post("/admin/queue/pause", headers=admin)).status == 200
    for _ in range(2):
        await client.post("/api/jobs", json={"kind": "noop"}, headers=operator)

    async def counted() -> Samples | None:  # the engine counts pending rows once a second
        found = samples(await scrape_text(client, viewer))
        return found if value(found, "toombos_jobs", status="pending") == 2 else None

    found = await eventually_async(counted, 10, "2 pending jobs in the metrics")
    assert value(found, "toombos_job_queue_depth") == 2
    assert value(found, "toombos_job_queue_paused") == 1
    body = orjson.loads(await (await client.get("/api/metrics", headers=viewer)).read())
    assert body["queue_size"] == 2
    assert (await client.post("/admin/queue/resume", headers=admin)).status == 200
    await client.app[ENGINE].join()


async def test_json_follows_the_same_counters(
    client: Client, viewer: dict[str, str], operator: dict[str, str]
) -> None:
    await run_jobs(client, operator)
    cache = client.app[CACHE]
    await cache.set("k", b"v")
    assert await cache.get("k") == b"v" and await cache.get("missing") is None
    body = orjson.loads(await (await client.get("/api/metrics", headers=viewer)).read())
    # The key fixtures make no requests: these are the three POSTs and nothing else.
    assert body["requests_total"] == 3
    assert body["error_rate"] == 0.0
    assert body["cache_hit_rate"] == 0.5
    assert body["active_jobs"] == 0
    assert body["queue_size"] == client.app[ENGINE].stats()["queue_depth"]


async def test_the_activity_logs_lines_are_exposed(client: Client, viewer: dict[str, str]) -> None:
    activity = client.app[ACTIVITY]
    for _ in range(3):  # each refusal is an auth.refused line
        assert (await client.get("/api/jobs")).status == 401
    await activity.flush()
    found = samples(await scrape_text(client, viewer))
    assert activity.written >= 3
    assert value(found, "toombos_activity_lines_written_total") == activity.written
    assert value(found, "toombos_activity_lines_dropped_total") == activity.dropped == 0


async def test_each_app_has_its_own_registry(
    make_client: ClientFactory, tmp_path: Path, client: Client, viewer: dict[str, str]
) -> None:
    other = await make_client(tmp_path / "other")
    for _ in range(3):
        await other.get("/health")
    found = samples(await scrape_text(client, viewer))
    assert value(found, "toombos_http_requests_total", method="GET", route="/health",
                 status="200") == 0
    assert client.app[METRICS].registry is not other.app[METRICS].registry
    global_names = {m.name for m in prometheus_client.REGISTRY.collect()}
    assert not any(name.startswith(("toombos_", "app_")) for name in global_names)


# -- promtool ------------------------------------------------------------------------------


def promtool_check(promtool: str, text: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True,
                          text=True, timeout=60, check=False)


async def test_a_live_scrape_passes_promtool(
    client: Client, viewer: dict[str, str], operator: dict[str, str], promtool: str
) -> None:
    await run_jobs(client, operator)
    await client.get("/no/such/page")
    await client.get("/api/jobs/job_x", headers=viewer)
    ws = await client.ws_connect(f"/ws/jobs?token={admin_secret(client)}")
    await client.post("/api/jobs", json={"kind": "noop"}, headers=operator)
    assert (await ws.receive_json(timeout=5))["type"] in {"job_created", "job_update"}
    await client.app[ENGINE].join()
    text = await scrape_text(client, viewer)
    await ws.close()
    checked = promtool_check(promtool, text)
    assert checked.returncode == 0 and not checked.stdout.strip(), checked.stdout + checked.stderr
    names = {family.name for family in parse_text(text)}
    expected: set[str] = {
        *SEED_GAUGES, "toombos_http_requests", "toombos_http_request_duration_seconds",
        "toombos_jobs_submitted", "toombos_jobs_finished", "toombos_job_run_seconds",
        "toombos_job_queue_wait_seconds", "toombos_jobs", "toombos_job_queue_depth",
        "toombos_jobs_running", "toombos_websocket_connections", "toombos_websocket_refused",
        "toombos_websocket_messages_sent", "toombos_websocket_slow_consumers_closed",
        "toombos_cache_hits", "toombos_cache_misses", "toombos_cache_evictions",
        "toombos_db_commit_seconds", "toombos_db_commit_batch_size",
        "process_cpu_seconds", "process_resident_memory_bytes",
    }
    assert expected <= names, expected - names


async def test_promtool_catches_a_broken_exposition(promtool: str) -> None:
    """The check above can fail: promtool refuses what is not the format."""
    checked = promtool_check(promtool, "# TYPE x_total counter\nx_total{a=\"1\"} one\n")
    assert checked.returncode != 0




README = Path(__file__).resolve().parent.parent / "README.md"


def readme_block(language: str, containing: str) -> str:
    blocks = re.findall(rf"```{language}\n(.*?)```", README.read_text(), re.S)
    (block,) = [b for b in blocks if containing in b]
    return block


def promql_expressions(block: str) -> list[str]:
    """Each query of a README block: a line that is not indented starts one."""
    expressions: list[str] = []
    for line in block.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        if line[0].isspace() and expressions:
            expressions[-1] += " " + line.strip()
        else:
            expressions.append(line.strip())
    return expressions


def test_the_readmes_scrape_config_and_queries_pass_promtool(
    promtool: str, tmp_path: Path
) -> None:
    key = tmp_path / "viewer.key"
    key.write_text("tbe_example\n")
    config = readme_block("yaml", "scrape_configs")
    config = re.sub(r"credentials_file: \S+", f"credentials_file: {key}", config)
    (tmp_path / "prometheus.yml").write_text(config)
    checked = subprocess.run([promtool, "check", "config", str(tmp_path / "prometheus.yml")],
                             capture_output=True, text=True, timeout=60, check=False)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    queries = promql_expressions(readme_block("promql", "histogram_quantile"))
    assert len(queries) == 5
    rules = {"groups": [{"name": "readme", "rules": [
        {"record": f"readme:query{n}", "expr": query} for n, query in enumerate(queries)]}]}
    (tmp_path / "rules.yml").write_bytes(orjson.dumps(rules))  # JSON is YAML
    checked = subprocess.run([promtool, "check", "rules", str(tmp_path / "rules.yml")],
                             capture_output=True, text=True, timeout=60, check=False)
    assert checked.returncode == 0, checked.stdout + checked.stderr
