"""The one route table: every path the server answers, with the role it needs, its typed
body or query, and its replies by status (the OpenAPI document is built from it)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from . import openapi
from .api import (
    activity,
    admin,
    analytics,
    cache,
    conformance,
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
from .api.contract import Media, Replies, TypedHandler, decoder, replies
from .api.failures import unmatched
from .api.middleware import edge
from .api.schemas import admin as a
from .api.schemas import analytics as an
from .api.schemas import cache as c
from .api.schemas import content as ct
from .api.schemas import critical as cr
from .api.schemas import documents as d
from .api.schemas import jobs as j
from .api.schemas import projects as pr
from .api.schemas import system as sy
from .api.throttle import Throttle
from .appkeys import LIMITER, METRICS, OPENAPI, ROUTE_ROLES, SETTINGS
from .keys import Role
from .metrics import UNMATCHED
from .ws import endpoints as ws

PUBLIC = None
VIEWER, OPERATOR, ADMIN = Role.viewer, Role.operator, Role.admin
HTML = Media(("text/html",))
NOT_MODIFIED = {304: None}
INGEST = Media(("multipart/form-data", "application/json", "application/x-www-form-urlencoded"),
               fields={"multipart/form-data": d.IngestForm, "application/json": d.IngestText,
                       "application/x-www-form-urlencoded": d.IngestText})


@dataclass(frozen=True, slots=True)
class Route:
    method: str
    path: str
    #: ``handler(request)``, or ``handler(request, value)`` with the decoded body or query
    handler: TypedHandler
    role: Role | None
    #: The JSON body's type (a ``Body``, decoded for the handler), or a ``Media`` the
    #: handler reads itself (multipart uploads), described in the document.
    body: Any = None
    #: The query string's type (a ``Query``, decoded for the handler).
    query: Any = None
    #: The replies by status (a ``Reply`` type, a ``Media``, or None for no body); the
    #: pipeline's own (401, 422, …) are added by ``contract.all_replies``.
    replies: Replies = field(default_factory=dict)
    #: A WebSocket: its upgrade is authenticated by the gate (origin, per-IP limit, then a
    #: header or ?token=), not by the pipeline.
    gated: bool = False
    #: A boolean setting that, when true, opens this route to anonymous clients (scrapers:
    #: then no rate limit either).
    public_if: str | None = None
    #: Asked by supervisors and load balancers: never rate-limited.
    probe: bool = False


def socket(path: str, handler: TypedHandler, *errors: int) -> Route:
    return Route("GET", path, handler, VIEWER, replies=replies(None, 101, errors=(
        400, 401, 403, 503, *errors)), gated=True)


def _documents(prefix: str) -> tuple[Route, ...]:
    one = f"{prefix}/documents/{{doc_id}}"
    return (
        Route("GET", f"{prefix}/documents", documents.list_documents, VIEWER,
              query=d.DocumentQuery, replies=replies(d.DocumentPage)),
        Route("POST", f"{prefix}/documents", documents.create_document, OPERATOR,
              body=d.NewDocument, replies=replies(d.Document, 201)),
        Route("GET", one, documents.get_document, VIEWER,
              replies=replies(d.Document, errors=(404,))),
        Route("PUT", one, documents.update_document, OPERATOR, body=d.DocumentChanges,
              replies=replies(d.Document, errors=(404,))),
        Route("DELETE", one, documents.delete_document, OPERATOR,
              replies=replies(d.DocumentDeleted, errors=(404,))),
        *(Route("GET", f"{one}/{name}", documents.document_file, VIEWER, replies=FILE)
          for name in ("file", "raw")),
    )


#: The original bytes of a document, whole or a range of them.
FILE = {**replies(Media(("*/*",), binary=True), errors=(404, 416)),
        206: Media(("*/*",), binary=True), **NOT_MODIFIED}


def _projects(prefix: str) -> tuple[Route, ...]:
    one = f"{prefix}/projects/{{project_id}}"
    return (
        Route("GET", f"{prefix}/projects", projects.list_projects, VIEWER,
              query=pr.ProjectQuery, replies=replies(pr.ProjectPage)),
        Route("POST", f"{prefix}/projects", projects.create_project, OPERATOR,
              body=pr.NewProjectBody, replies=replies(pr.Project, 201)),
        Route("GET", one, projects.get_project, VIEWER,
              replies=replies(pr.Project, errors=(404,))),
        Route("PUT", one, projects.update_project, OPERATOR, body=pr.ProjectChangesBody,
              replies=replies(pr.Project, errors=(404,))),
        Route("DELETE", one, projects.delete_project, OPERATOR, query=pr.DeleteQuery,
              replies=replies(pr.ProjectDeleted, errors=(404, 409))),
    )


JOB_404, JOB_CHANGE = replies(j.Job, errors=(404,)), replies(j.Job, errors=(404, 409))
GENERATED = replies(j.Job, 202, errors=(404,))
METRICS_TEXT = Media(("text/plain", "application/openmetrics-text", "application/json"),
                     fields={"application/json": sy.DashboardMetrics})

ROUTES: tuple[Route, ...] = (
    # probes
    Route("GET", "/health", probes.health, PUBLIC, replies=replies(sy.Health, s503=sy.Health),
          probe=True),
    Route("GET", "/health/detailed", probes.health_detailed, VIEWER,
          replies=replies(sy.HealthDetailed, s503=sy.HealthDetailed)),
    Route("POST", "/health/check/{component}", probes.check_component, PUBLIC,
          replies=replies(sy.ComponentCheck, errors=(404,), s503=sy.ComponentCheck)),
    Route("GET", "/ready", probes.ready, PUBLIC, replies=replies(sy.Ready, s503=sy.Ready),
          probe=True),
    Route("GET", "/live", probes.live, PUBLIC, replies=replies(sy.Alive), probe=True),
    Route("GET", "/liveness", probes.live, PUBLIC, replies=replies(sy.Alive), probe=True),
    Route("GET", "/startup", probes.startup, PUBLIC,
          replies=replies(sy.Started, s503=sy.Started), probe=True),
    # metrics (TOOMBOS_METRICS_PUBLIC opens /metrics to scrapers without a key)
    Route("GET", "/metrics", metrics.scrape, VIEWER, replies=replies(METRICS_TEXT),
          public_if="metrics_public"),
    Route("GET", "/api/metrics", metrics.dashboard, VIEWER,
          replies=replies(sy.DashboardMetrics)),
    # the dashboard: public files (they hold no data; every call they make carries a key)
    Route("GET", "/", dashboard.index, PUBLIC, replies={**replies(HTML), **NOT_MODIFIED}),
    Route("GET", "/static/{version}/{path:.+}", dashboard.asset, PUBLIC,
          replies={**replies(Media(("*/*",), binary=True), errors=(404,)), **NOT_MODIFIED}),
    # docs
    Route("GET", "/openapi.json", docs.openapi_json, PUBLIC,
          replies=replies(Media(("application/json",)))),
    Route("GET", "/docs", docs.docs_page, PUBLIC, replies=replies(HTML)),
    # jobs (fixed paths before "{job_id}" ones, which would swallow them)
    Route("GET", "/api/jobs/export", jobs.export_jobs, VIEWER, query=j.ExportQuery,
          replies=replies(Media(("text/csv", "application/json")))),
    Route("POST", "/api/jobs/batch/retry", jobs.batch_retry, OPERATOR, body=j.BatchBody,
          replies=replies(j.BatchTally)),
    Route("POST", "/api/jobs/batch/cancel", jobs.batch_cancel, OPERATOR, body=j.BatchBody,
          replies=replies(j.BatchTally)),
    Route("GET", "/api/jobs", jobs.list_jobs, VIEWER, query=j.JobListQuery,
          replies=replies(j.JobPage)),
    Route("GET", "/api/v2/jobs", jobs.list_jobs, VIEWER, query=j.JobListQuery,
          replies=replies(j.JobPage)),
    Route("POST", "/api/jobs", jobs.create_job, OPERATOR, body=j.NewJob,
          replies=replies(j.Job, 202)),
    Route("GET", "/api/jobs/{job_id}", jobs.get_job, VIEWER, replies=JOB_404),
    Route("GET", "/api/v2/jobs/{job_id}", jobs.get_job, VIEWER, replies=JOB_404),
    Route("GET", "/api/status/{job_id}", jobs.get_job, VIEWER, replies=JOB_404),
    Route("POST", "/api/jobs/{job_id}/retry", jobs.retry_job, OPERATOR, replies=JOB_CHANGE),
    Route("POST", "/api/v2/jobs/{job_id}/retry", jobs.retry_job, OPERATOR, replies=JOB_CHANGE),
    Route("POST", "/api/jobs/{job_id}/cancel", jobs.cancel_job, OPERATOR, replies=JOB_CHANGE),
    Route("POST", "/api/v2/jobs/{job_id}/cancel", jobs.cancel_job, OPERATOR,
          replies=JOB_CHANGE),
    Route("DELETE", "/api/v2/content/sync/{job_id}", jobs.cancel_sync, OPERATOR,
          replies=replies(j.Cancelled, errors=(404, 409))),
    # realtime
    socket("/ws/jobs", ws.jobs),
    socket("/ws/status/{job_id}", ws.status, 404),
    socket("/ws/dashboard", ws.dashboard),
    socket("/api/v1/ws/dashboard", ws.dashboard),
    socket("/ws/content/{client_id}", ws.content),
    socket("/ws/session/{session_id}", ws.session),
    Route("POST", "/api/auth/ws-token", realtime.ws_token, VIEWER, replies=replies(a.WsToken)),
    Route("GET", "/api/auth/whoami", keys.whoami, VIEWER, replies=replies(a.WhoAmI)),
    # ingest
    Route("POST", "/api/ingest", ingest.ingest, OPERATOR, body=INGEST,
          replies=replies(d.IngestAccepted, 202, errors=(400, 413, 422))),
    # documents (the seeds' /api/v1 paths are aliases)
    *_documents("/api"),
    *_documents("/api/v1"),
    Route("GET", "/api/search", search.search, VIEWER, query=d.SearchQuery,
          replies=replies(d.SearchPage)),
    # projects (seed 002's /api/v1 paths, and the same under /api)
    *_projects("/api"),
    *_projects("/api/v1"),
    # generate
    Route("POST", "/api/v1/generate", generate.generate, OPERATOR, body=ct.Generate,
          replies=GENERATED),
    Route("POST", "/api/v1/generate/email", generate.generate_email, OPERATOR,
          body=ct.Generate, replies=GENERATED),
    Route("POST", "/api/v1/generate/social", generate.generate_social, OPERATOR,
          body=ct.GenerateSocial, replies=GENERATED),
    Route("POST", "/api/v2/content/generate", generate.generate, OPERATOR, body=ct.Generate,
          replies=GENERATED),
    Route("POST", "/api/v2/content/sync", generate.sync, OPERATOR, body=ct.Generate,
          replies=GENERATED),
    *(Route("POST", path, generate.batch_generate, OPERATOR, body=ct.BatchGenerate,
            replies=replies(ct.BatchCreated, 202))
      for path in ("/api/v1/batch/generate", "/api/v2/batch/generate",
                   "/api/v2/content/batch")),
    Route("GET", "/api/v1/preview", generate.preview, OPERATOR, query=ct.PreviewQuery,
          replies=replies(ct.Preview, errors=(404,))),
    Route("POST", "/api/v2/content/validate", generate.validate, OPERATOR,
          body=ct.ContentToCheck, replies=replies(ct.Validation)),
    # content
    Route("GET", "/api/v2/content", content.list_content, VIEWER, query=ct.ContentQuery,
          replies=replies(ct.ContentPage)),
    Route("GET", "/api/v1/content/{content_id}", content.get_content, VIEWER,
          replies=replies(ct.ContentItem, errors=(404,))),
    Route("GET", "/api/v2/content/{content_id}", content.get_content, VIEWER,
          replies=replies(ct.ContentItem, errors=(404,))),
    Route("PUT", "/api/v2/content/{content_id}", content.update_content, OPERATOR,
          body=ct.ContentEdit, replies=replies(ct.ContentItem, errors=(404, 409))),
    Route("DELETE", "/api/v2/content/{content_id}", content.delete_content, OPERATOR,
          replies=replies(ct.ContentDeleted, errors=(404,))),
    Route("GET", "/api/v2/content/{content_id}/versions", content.versions, VIEWER,
          replies=replies(ct.Versions, errors=(404,))),
    Route("POST", "/api/v2/content/{content_id}/publish", content.publish_content, OPERATOR,
          body=ct.PublishBody, replies=replies(j.Job, 202, errors=(404,))),
    Route("GET", "/api/v2/templates", content.templates, VIEWER,
          replies=replies(ct.Templates)),
    Route("GET", "/api/templates", content.templates, VIEWER, replies=replies(ct.Templates)),
    # cache
    *(route for v in ("v1", "v2") for route in (
        Route("GET", f"/api/{v}/cache/stats", cache.stats, VIEWER,
              replies=replies(c.CacheStats)),
        Route("POST", f"/api/{v}/cache/invalidate", cache.invalidate, ADMIN,
              body=c.Invalidate, replies=replies(c.Invalidated)),
        Route("POST", f"/api/{v}/cache/clear", cache.clear, ADMIN,
              replies=replies(c.Invalidated)),
        Route("GET", f"/api/{v}/cache/history", cache.history, VIEWER, query=c.HistoryQuery,
              replies=replies(c.CacheHistory)),
    )),
    # analytics
    Route("GET", "/api/analytics", analytics.overview, VIEWER, query=an.Window,
          replies=replies(an.Overview)),
    Route("GET", "/api/v2/analytics", analytics.overview, VIEWER, query=an.Window,
          replies=replies(an.Overview)),
    Route("GET", "/api/v2/analytics/jobs", analytics.jobs, VIEWER, query=an.Window,
          replies=replies(an.JobAnalytics)),
    # critical
    Route("POST", "/api/critical/emergency-publish", critical.emergency_publish, ADMIN,
          body=cr.Emergency, replies=replies(cr.EmergencyAccepted, 202, errors=(404,))),
    Route("POST", "/api/critical/rollback", critical.rollback, ADMIN, body=cr.Rollback,
          replies=replies(cr.RolledBack, errors=(404, 409))),
    Route("GET", "/api/critical/status", critical.status, VIEWER,
          replies=replies(sy.CriticalStatus)),
    # site
    Route("GET", "/site/{slug}", site.page, PUBLIC, replies=replies(HTML, errors=(404,))),
    # activity log
    Route("GET", "/api/activity", activity.list_activity, VIEWER, query=a.ActivityQuery,
          replies=replies(a.ActivityPage)),
    # admin
    Route("GET", "/admin/connections", realtime.connections, ADMIN, query=a.ConnectionsQuery,
          replies=replies(a.Connections)),
    Route("POST", "/admin/broadcast", realtime.broadcast, ADMIN, body=a.Broadcast,
          replies=replies(a.Published, 202)),
    Route("POST", "/admin/queue/pause", jobs.pause_queue, ADMIN,
          replies=replies(sy.QueueState)),
    Route("POST", "/admin/queue/resume", jobs.resume_queue, ADMIN,
          replies=replies(sy.QueueState)),
    Route("GET", "/admin/keys", keys.list_keys, ADMIN, query=a.KeyListQuery,
          replies=replies(a.KeyList)),
    Route("POST", "/admin/keys", keys.create_key, ADMIN, body=a.NewKey,
          replies=replies(a.CreatedKey, 201)),
    Route("DELETE", "/admin/keys/{key_id}", keys.revoke_key, ADMIN,
          replies=replies(a.Key, errors=(404,))),
    Route("POST", "/admin/restart", admin.restart, ADMIN,
          replies=replies(sy.Restarting, 202, errors=(409, 429))),
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
                       throttle=None if route.probe or opened else throttle,
                       decode=decoder(route.body, route.query))
        if settings.validate_responses:  # tests only: production pays nothing for it
            handler = conformance.checked(route, handler)
        roles[app.router.add_route(route.method, route.path, handler)] = role
    # Last: whatever no route matched (any method, any path) answers a JSON 404 or 405.
    catch_all = edge(unmatched, PUBLIC, meters.meter("*", UNMATCHED), throttle=throttle)
    roles[app.router.add_route("*", r"/{unmatched:[\s\S]*}", catch_all)] = PUBLIC
    app[OPENAPI] = openapi.Document(routes)
