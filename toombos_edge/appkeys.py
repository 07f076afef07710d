"""Every piece of application and request state, as typed keys, in one place."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web
from aiohttp.web_urldispatcher import AbstractRoute

from .activity import ActivityLog
from .analytics import AnalyticsService
from .backends import Backend
from .cache import ContentCache
from .content.service import ContentService
from .dashboard import DashboardFiles
from .documents.ingest import Ingestor
from .documents.intake import IngestService
from .documents.search import SearchService
from .documents.service import DocumentService
from .events import EventBus
from .health import HealthService
from .idp import TokenVerifier
from .jobs.critical import CriticalStatus
from .jobs.engine import JobEngine
from .jobs.listing import JobQueries
from .keys import KeyService, Principal, Role
from .lifecycle import Lifecycle
from .metrics import Metrics
from .openapi import Document
from .projects.service import ProjectService
from .ratelimit import RateLimiter
from .restart import Restarts
from .retention import Retention
from .settings import Settings
from .store import Database
from .ws.hub import Hub
from .ws.tokens import WsTokens

if TYPE_CHECKING:  # asyncpg is loaded only by a node on PostgreSQL
    from .events_bridge import NodeBridge

SETTINGS = web.AppKey("settings", Settings)
LIFECYCLE = web.AppKey("lifecycle", Lifecycle)
#: Every store, on the SQLite file or on PostgreSQL (:mod:`.backends`).
BACKEND = web.AppKey("backend", Backend)
#: The SQLite database (set on SQLite only).
DATABASE = web.AppKey("database", Database)
#: The events between nodes (set on PostgreSQL only).
BRIDGE: web.AppKey[NodeBridge] = web.AppKey("bridge")
BUS = web.AppKey("bus", EventBus)
KEYS = web.AppKey("keys", KeyService)
HEALTH = web.AppKey("health", HealthService)
ENGINE = web.AppKey("engine", JobEngine)
#: The jobs list, export and batch operations; CRITICAL: the critical status report.
JOBS = web.AppKey("jobs", JobQueries)
CRITICAL = web.AppKey("critical", CriticalStatus)
HUB = web.AppKey("hub", Hub)
WS_TOKENS = web.AppKey("ws_tokens", WsTokens)
#: Identity-provider tokens; set only when TOOMBOS_JWT_SECRET or TOOMBOS_JWT_JWKS is.
IDP = web.AppKey("idp", TokenVerifier)
DOCUMENTS = web.AppKey("documents", DocumentService)
SEARCH = web.AppKey("search", SearchService)
PROJECTS = web.AppKey("projects", ProjectService)
INGESTOR = web.AppKey("ingestor", Ingestor)
#: ``POST /api/ingest``'s use case: a request becomes an ``ingest`` job.
INGEST = web.AppKey("ingest", IngestService)
CACHE = web.AppKey("cache", ContentCache)
CONTENT = web.AppKey("content", ContentService)
RETENTION = web.AppKey("retention", Retention)
ANALYTICS = web.AppKey("analytics", AnalyticsService)
METRICS = web.AppKey("metrics", Metrics)
ACTIVITY = web.AppKey("activity", ActivityLog)
RESTARTS = web.AppKey("restarts", Restarts)
#: The rate limits' buckets (made with the app: the route table binds them).
LIMITER = web.AppKey("limiter", RateLimiter)
#: The dashboard's files, read once at start.
DASHBOARD = web.AppKey("dashboard", DashboardFiles)
#: The role each route needs; None marks the few public routes (probes, docs).
ROUTE_ROLES = web.AppKey("route_roles", dict[AbstractRoute, Role | None])
#: The OpenAPI document of the route table (built on its first request).
OPENAPI = web.AppKey("openapi", Document)

#: Who authenticated this request: an API key, or an identity-provider token's subject.
PRINCIPAL = web.RequestKey[Principal]("principal")
#: This request's correlation id (sent back as X-Correlation-ID).
CORRELATION_ID = web.RequestKey("correlation_id", str)
