"""The one route table: every path the server answers, with the role it needs."""

from __future__ import annotations

from dataclasses import dataclass

import orjson
from aiohttp import web
from aiohttp.typedefs import Handler

from . import openapi
from .api import (
    activity,
    admin,
    analytics,
    cache,
    content,
    critical,
    dashboard,
    docs,
    documents,
    generate,
    ingest,
    jobs,
    keys,
    metrics,
    probes,
    projects,
    realtime,
    search,
    site,
)
from .api.middleware import edge, unmatched
from .api.throttle import Throttle
from .appkeys import LIMITER, METRICS, OPENAPI, ROUTE_ROLES, SETTINGS
from .keys import Role
from .metrics import UNMATCHED
from .ws import endpoints as ws

PUBLIC = None
VIEWER, OPERATOR, ADMIN = Role.viewer, Role.operator, Role.admin


@dataclass(frozen=True, slots=True)
class Route:
    method: str
    path: str
    handler: Handler
    role: Role | None
    #: A WebSocket: its upgrade is authenticated by the gate (origin, per-IP limit, then a
    #: header or ?token=), not by the pipeline.
    gated: bool = False
    #: A boolean setting that, when true, opens this route to anonymous clients (scrapers:
    #: then no rate limit either).
    public_if: str | None = None
    #: Asked by supervisors and load balancers: never rate-limited.
    probe: bool = False


def socket(path: str, handler: Handler) -> Route:
    return Route("GET", path, handler, VIEWER, gated=True)


ROUTES: tuple[Route, ...] = (
    # probes
    Route("GET", "/health", probes.health, PUBLIC, probe=True),
    Route("GET", "/health/detailed", probes.health_detailed, VIEWER),
    Route("POST", "/health/check/{component}", probes.check_component, PUBLIC),
    Route("GET", "/ready", probes.ready, PUBLIC, probe=True),
    Route("GET", "/live", probes.live, PUBLIC, probe=True),
    Route("GET", "/liveness", probes.live, PUBLIC, probe=True),
    Route("GET", "/startup", probes.startup, PUBLIC, probe=True),
    # metrics (TOOMBOS_METRICS_PUBLIC opens /metrics to scrapers without a key)
    Route("GET", "/metrics", metrics.scrape, VIEWER, public_if="metrics_public"),
    Route("GET", "/api/metrics", metrics.dashboard, VIEWER),
    # the dashboard: public files (they hold no data; every call they make carries a key)
    Route("GET", "/", dashboard.index, PUBLIC),
    Route("GET", "/static/{version}/{path:.+}", dashboard.asset, PUBLIC),
    # docs
    Route("GET", "/openapi.json", docs.openapi_json, PUBLIC),
    Route("GET", "/docs", docs.docs_page, PUBLIC),
    # jobs (fixed paths before "{job_id}" ones, which would swallow them)
    Route("GET", "/api/jobs/export", jobs.export_jobs, VIEWER),
    Route("POST", "/api/jobs/batch/retry", jobs.batch_retry, OPERATOR),
    Route("POST", "/api/jobs/batch/cancel", jobs.batch_cancel, OPERATOR),
    Route("GET", "/api/jobs", jobs.list_jobs, VIEWER),
    Route("GET", "/api/v2/jobs", jobs.list_jobs, VIEWER),
    Route("POST", "/api/jobs", jobs.create_job, OPERATOR),
    Route("GET", "/api/jobs/{job_id}", jobs.get_job, VIEWER),
    Route("GET", "/api/v2/jobs/{job_id}", jobs.get_job, VIEWER),
    Route("GET", "/api/status/{job_id}", jobs.get_job, VIEWER),
    Route("POST", "/api/jobs/{job_id}/retry", jobs.retry_job, OPERATOR),
    Route("POST", "/api/v2/jobs/{job_id}/retry", jobs.retry_job, OPERATOR),
    Route("POST", "/api/jobs/{job_id}/cancel", jobs.cancel_job, OPERATOR),
    Route("POST", "/api/v2/jobs/{job_id}/cancel", jobs.cancel_job, OPERATOR),
    Route("DELETE", "/api/v2/content/sync/{job_id}", jobs.cancel_sync, OPERATOR),
    # realtime
    socket("/ws/jobs", ws.jobs),
    socket("/ws/status/{job_id}", ws.status),
    socket("/ws/dashboard", ws.dashboard),
    socket("/api/v1/ws/dashboard", ws.dashboard),
    socket("/ws/content/{client_id}", ws.content),
    socket("/ws/session/{session_id}", ws.session),
    Route("POST", "/api/auth/ws-token", realtime.ws_token, VIEWER),
    Route("GET", "/api/auth/whoami", keys.whoami, VIEWER),
    # ingest
    Route("POST", "/api/ingest", ingest.ingest, OPERATOR),
    # documents (the seeds' /api/v1 paths are aliases)
    *(
        route
        for prefix in ("/api", "/api/v1")
        for route in (
            Route("GET", f"{prefix}/documents", documents.list_documents, VIEWER),
            Route("POST", f"{prefix}/documents", documents.create_document, OPERATOR),
            Route("GET", f"{prefix}/documents/{{doc_id}}", documents.get_document, VIEWER),
            Route("PUT", f"{prefix}/documents/{{doc_id}}", documents.update_document, OPERATOR),
            Route("DELETE", f"{prefix}/documents/{{doc_id}}", documents.delete_document,
                  OPERATOR),
            Route("GET", f"{prefix}/documents/{{doc_id}}/file", documents.document_file, VIEWER),
            Route("GET", f"{prefix}/documents/{{doc_id}}/raw", documents.document_file, VIEWER),
        )
    ),
    Route("GET", "/api/search", search.search, VIEWER),
    # projects (seed 002's /api/v1 paths, and the same under /api)
    *(
        route
        for prefix in ("/api", "/api/v1")
        for route in (
            Route("GET", f"{prefix}/projects", projects.list_projects, VIEWER),
            Route("POST", f"{prefix}/projects", projects.create_project, OPERATOR),
            Route("GET", f"{prefix}/projects/{{project_id}}", projects.get_project, VIEWER),
            Route("PUT", f"{prefix}/projects/{{project_id}}", projects.update_project, OPERATOR),
            Route("DELETE", f"{prefix}/projects/{{project_id}}", projects.delete_project,
                  OPERATOR),
        )
    ),
    # generate
    Route("POST", "/api/v1/generate", generate.generate, OPERATOR),
    Route("POST", "/api/v1/generate/email", generate.generate_email, OPERATOR),
    Route("POST", "/api/v1/generate/social", generate.generate_social, OPERATOR),
    Route("POST", "/api/v2/content/generate", generate.generate, OPERATOR),
    Route("POST", "/api/v2/content/sync", generate.sync, OPERATOR),
    Route("POST", "/api/v1/batch/generate", generate.batch_generate, OPERATOR),
    Route("POST", "/api/v2/batch/generate", generate.batch_generate, OPERATOR),
    Route("POST", "/api/v2/content/batch", generate.batch_generate, OPERATOR),
    Route("GET", "/api/v1/preview", generate.preview, OPERATOR),
    Route("POST", "/api/v2/content/validate", generate.validate, OPERATOR),
    # content
    Route("GET", "/api/v2/content", content.list_content, VIEWER),
    Route("GET", "/api/v1/content/{content_id}", content.get_content, VIEWER),
    Route("GET", "/api/v2/content/{content_id}", content.get_content, VIEWER),
    Route("PUT", "/api/v2/content/{content_id}", content.update_content, OPERATOR),
    Route("DELETE", "/api/v2/content/{content_id}", content.delete_content, OPERATOR),
    Route("GET", "/api/v2/content/{content_id}/versions", content.versions, VIEWER),
    Route("POST", "/api/v2/content/{content_id}/publish", content.publish_content, OPERATOR),
    Route("GET", "/api/v2/templates", content.templates, VIEWER),
    Route("GET", "/api/templates", content.templates, VIEWER),
    # cache
    Route("GET", "/api/v1/cache/stats", cache.stats, VIEWER),
    Route("GET", "/api/v2/cache/stats", cache.stats, VIEWER),
    Route("POST", "/api/v1/cache/invalidate", cache.invalidate, ADMIN),
    Route("POST", "/api/v2/cache/invalidate", cache.invalidate, ADMIN),
    Route("POST", "/api/v1/cache/clear", cache.clear, ADMIN),
    Route("POST", "/api/v2/cache/clear", cache.clear, ADMIN),
    Route("GET", "/api/v1/cache/history", cache.history, VIEWER),
    Route("GET", "/api/v2/cache/history", cache.history, VIEWER),
    # analytics
    Route("GET", "/api/analytics", analytics.overview, VIEWER),
    Route("GET", "/api/v2/analytics", analytics.overview, VIEWER),
    Route("GET", "/api/v2/analytics/jobs", analytics.jobs, VIEWER),
    # critical
    Route("POST", "/api/critical/emergency-publish", critical.emergency_publish, ADMIN),
    Route("POST", "/api/critical/rollback", critical.rollback, ADMIN),
    Route("GET", "/api/critical/status", critical.status, VIEWER),
    # site
    Route("GET", "/site/{slug}", site.page, PUBLIC),
    # activity log
    Route("GET", "/api/activity", activity.list_activity, VIEWER),
    # admin
    Route("GET", "/admin/connections", realtime.connections, ADMIN),
    Route("POST", "/admin/broadcast", realtime.broadcast, ADMIN),
    Route("POST", "/admin/queue/pause", jobs.pause_queue, ADMIN),
    Route("POST", "/admin/queue/resume", jobs.resume_queue, ADMIN),
    Route("GET", "/admin/keys", keys.list_keys, ADMIN),
    Route("POST", "/admin/keys", keys.create_key, ADMIN),
    Route("DELETE", "/admin/keys/{key_id}", keys.revoke_key, ADMIN),
    Route("POST", "/admin/restart", admin.restart, ADMIN),
)


def setup_routes(app: web.Application, routes: tuple[Route, ...] = ROUTES) -> None:
    """Register every route behind the pipeline with its role, its request meter and its
    rate limits, then the catch-all."""
    roles, settings, meters = app[ROUTE_ROLES], app[SETTINGS], app[METRICS].requests
    throttle = Throttle(app[LIMITER], settings.trusted_proxies) if settings.rate_limit else None
    for route in routes:
        opened = bool(route.public_if and getattr(settings, route.public_if))
        role = PUBLIC if opened else route.role
        meter = meters.meter(route.method, route.path)
        handler = edge(route.handler, role, meter, gated=route.gated,
                       throttle=None if route.probe or opened else throttle)
        roles[app.router.add_route(route.method, route.path, handler)] = role
    # Last: whatever no route matched (any method, any path) answers a JSON 404 or 405.
    catch_all = edge(unmatched, PUBLIC, meters.meter("*", UNMATCHED), throttle=throttle)
    roles[app.router.add_route("*", "/{unmatched:.*}", catch_all)] = PUBLIC
    app[OPENAPI] = orjson.dumps(openapi.build(routes))
