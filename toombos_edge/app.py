"""``create_app(settings)``: the aiohttp application, its state and its lifetimes."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from aiohttp import web

from .activity import for_settings
from .analytics import AnalyticsService
from .api.middleware import on_prepare, refuse_unwrapped_routes
from .appkeys import (
    ACTIVITY,
    ANALYTICS,
    BACKEND,
    BRIDGE,
    BUS,
    CACHE,
    CONTENT,
    CRITICAL,
    DASHBOARD,
    DATABASE,
    DOCUMENTS,
    ENGINE,
    HEALTH,
    HUB,
    IDP,
    INGEST,
    INGESTOR,
    JOBS,
    KEYS,
    LIFECYCLE,
    LIMITER,
    METRICS,
    PROJECTS,
    RESTARTS,
    RETENTION,
    ROUTE_ROLES,
    SEARCH,
    SETTINGS,
    WS_TOKENS,
)
from .backends import open_backend
from .cache import ContentCache
from .content.generate import kinds as content_kinds
from .content.publish import Publisher, config_from
from .content.render import Renderer
from .content.service import ContentService
from .content.templates import TemplateLibrary
from .dashboard import load as load_dashboard
from .dashboard import static_dir
from .documents.archives import ArchiveLimits
from .documents.blobs import file_storage
from .documents.ingest import Ingestor
from .documents.intake import IngestService
from .documents.readers import ReaderPool
from .documents.search import SearchService
from .documents.service import DocumentService
from .events import EventBus
from .health import PASS, WARN, Check, HealthService
from .idp import Jwks, TokenVerifier
from .ids import iso
from .jobs.critical import CriticalStatus
from .jobs.engine import JobEngine
from .jobs.kinds import KindRegistry
from .jobs.listing import JobQueries
from .jobs.nodes import Peers
from .jobs.retry import Backoff
from .keys import KeyService
from .lifecycle import Lifecycle
from .metrics import Metrics
from .projects.service import ProjectService
from .ratelimit import RateLimiter
from .restart import RESTART_STAMP, Restarts
from .retention import Policy, Retention
from .routes import setup_routes
from .sdnotify import notify_ctx
from .settings import Settings
from .store.blobs import Blobs
from .tls import setup_tls
from .ws.gate import Gate
from .ws.hub import Hub
from .ws.tokens import WsTokens, load_secret

if TYPE_CHECKING:
    from .events_bridge import NodeBridge

log = logging.getLogger(__name__)

KEY_REFRESH_SECONDS = 2.0
CACHE_EXPIRY_SECONDS = 600.0


def create_app(settings: Settings) -> web.Application:
    """Build the application; nothing is opened until it starts."""
    app = web.Application(
        client_max_size=settings.max_body_kb * 1024,
        # Request bodies are read in up to 1 MiB steps (aiohttp's default is 64 KiB): a
        # streamed upload costs fewer loop iterations per byte (bench/ingest.py).
        handler_args={"read_bufsize": 1 << 20},
    )
    app[SETTINGS] = settings
    app[LIFECYCLE] = Lifecycle()
    app[BUS] = EventBus()
    app[ROUTE_ROLES] = {}
    app[METRICS] = Metrics()  # before the routes: each route's request meter lives in it
    app[LIMITER] = RateLimiter.from_settings(settings)  # the same: the routes bind it
    app.on_response_prepare.append(on_prepare)
    setup_tls(app, settings)
    app.on_startup.insert(0, refuse_unwrapped_routes)  # before any lifetime starts
    # Features that own job kinds put their contexts between engine_ctx and workers_ctx, so
    # that their kinds are registered before the first job is taken. The cache comes before
    # the engine, which hands it to every job.
    app.cleanup_ctx.extend([notify_ctx, database_ctx, activity_ctx, keys_ctx, health_ctx,
                            bridge_ctx, idp_ctx, cache_ctx, engine_ctx, documents_ctx, projects_ctx,
                            content_ctx, metrics_ctx, limits_ctx, workers_ctx, retention_ctx,
                            hub_ctx, analytics_ctx, dashboard_ctx, restarts_ctx, ready_ctx])
    app.on_shutdown.append(close_websockets)
    setup_routes(app)
    return app


def prepare_data_dir(settings: Settings) -> None:
    """The data dir and its private cache folder (mode 0700: cached content is private)."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    cache = settings.data_dir / "cache"
    cache.mkdir(mode=0o700, exist_ok=True)
    cache.chmod(0o700)


async def database_ctx(app: web.Application) -> AsyncIterator[None]:
    """The database and its stores: the SQLite file in the data dir, or PostgreSQL."""
    settings = app[SETTINGS]
    prepare_data_dir(settings)
    backend = await open_backend(settings)
    app[BACKEND] = backend
    if backend.sqlite is not None:
        app[DATABASE] = backend.sqlite
    app[LIFECYCLE].started = True
    yield
    await backend.close()


async def activity_ctx(app: web.Application) -> AsyncIterator[None]:
    """The activity log, on the bus before anything publishes; the last to stop, so that
    what the others do while stopping is recorded too."""
    activity = for_settings(app[SETTINGS], app[BACKEND].activity, app[BUS])
    app[ACTIVITY] = activity
    if app[SETTINGS].activity_log:
        await activity.start()
    yield
    await activity.close()


async def keys_ctx(app: web.Application) -> AsyncIterator[None]:
    keys = KeyService(app[BACKEND].keys, app[BUS])
    app[KEYS] = keys
    secret = await keys.ensure_admin(app[SETTINGS].data_dir / "admin.key")
    await keys.refresh()
    if secret is not None:
        # Printed, never logged: this is the one time the secret is shown.
        settings = app[SETTINGS]
        # The key rides in the URL fragment, which a browser never sends to a server.
        print(
            f"Created the first admin API key (also in {settings.data_dir}/admin.key, "
            f"mode 0600); it is not shown again:\n{secret}\n"
            f"Dashboard (this link signs a browser in): {_dashboard_base(settings)}/#key={secret}",
            file=sys.stderr,
            flush=True,
        )
    unsubscribe = app[BUS].subscribe(keys.on_event)  # keys revoked on other nodes
    task = asyncio.create_task(_refresh_keys(keys), name="key-refresh")
    yield
    unsubscribe()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    await keys.flush_usage()


async def bridge_ctx(app: web.Application) -> AsyncIterator[None]:
    """On PostgreSQL, the events between this node and the others on the database (closed
    late: the engine's last events are sent before it goes)."""
    db = app[BACKEND].postgres
    if db is None:
        yield
        return
    from .events_bridge import NodeBridge  # loads asyncpg: on PostgreSQL only

    bridge = NodeBridge(db, app[BUS], node_id=app[SETTINGS].node_id or None)
    await bridge.start()
    app[BRIDGE] = bridge
    app[HEALTH].register("nodes", lambda: _bridge_check(bridge))
    yield
    await bridge.close()


async def _bridge_check(bridge: NodeBridge) -> Check:
    """Degraded while this node does not hear the others (their jobs' events reach its
    sockets again, caught up, once it does)."""
    state = bridge.state
    if not state.healthy:
        return Check(WARN, f"not hearing the other nodes since {iso(state.since)}: "
                           f"{state.reason}")
    return Check(PASS, f"node {bridge.origin}: {bridge.received} events from other nodes, "
                       f"{bridge.sent} sent")


async def idp_ctx(app: web.Application) -> AsyncIterator[None]:
    """Identity-provider tokens, when configured: the JWKS is loaded before requests come."""
    verifier = TokenVerifier.from_settings(app[SETTINGS])
    if verifier is None:
        yield
        return
    await verifier.start()
    app[IDP] = verifier
    if verifier.jwks is not None:
        jwks = verifier.jwks
        app[HEALTH].register("identity_provider", lambda: _jwks_check(jwks))
    yield
    await verifier.close()


async def _jwks_check(jwks: Jwks) -> Check:
    """Warns while no key is held or the last fetch failed: tokens may be refused then."""
    if jwks.last_error is not None or not jwks.held:
        reason = jwks.last_error or "no key for the accepted algorithms"
        return Check(WARN, f"signing keys from {jwks.source}: {reason}")
    return Check(PASS, f"signing keys held: {jwks.held}")


def _dashboard_base(settings: Settings) -> str:
    """Where a browser on this machine reaches the server (a wildcard bind is no address)."""
    if not settings.public_url and settings.host in {"0.0.0.0", "::", ""}:  # noqa: S104
        return f"http://127.0.0.1:{settings.port}"
    return settings.base_url


async def _refresh_keys(keys: KeyService) -> None:
    """Pick up keys changed from the CLI, and write ``last_used_at`` in batches."""
    while True:
        await asyncio.sleep(KEY_REFRESH_SECONDS)
        try:
            await keys.refresh()
        except Exception:
            log.exception("refreshing API keys failed")


async def health_ctx(app: web.Application) -> AsyncIterator[None]:
    app[HEALTH] = HealthService(app[BACKEND].health, app[SETTINGS].data_dir,
                                app[LIFECYCLE])
    if app[SETTINGS].activity_log:
        app[HEALTH].register("activity", app[ACTIVITY].check)
    yield


async def cache_ctx(app: web.Application) -> AsyncIterator[None]:
    """The content cache (it rebuilds itself if broken; a failure never stops the server)."""
    settings = app[SETTINGS]
    cache = ContentCache(
        settings.data_dir / "cache", bus=app[BUS],
        history=app[BACKEND].invalidations,
        size_limit_mb=settings.cache_size_mb, ttl_seconds=settings.cache_ttl_seconds,
    )
    await cache.open()
    app[CACHE] = cache
    app[HEALTH].register("cache", cache.check)
    task = asyncio.create_task(_expire_cache(cache), name="cache-expiry")
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    await cache.close()


async def _expire_cache(cache: ContentCache) -> None:
    """Drop expired renders now and then (diskcache would only do it lazily, on access)."""
    while True:
        await asyncio.sleep(CACHE_EXPIRY_SECONDS)
        await cache.expire()  # never raises: a failing cache counts an error and goes on


async def content_ctx(app: web.Application) -> AsyncIterator[None]:
    """Rendering (from documents or inline text), the content store, publishing, and the
    generate and publish kinds."""
    settings = app[SETTINGS]
    store = app[BACKEND].content
    templates = TemplateLibrary(settings.data_dir / "templates")
    publisher = Publisher(config_from(settings), store, app[BUS])
    service = ContentService(store, Renderer(templates), publisher, cache=app[CACHE],
                             documents=app[DOCUMENTS], bus=app[BUS], jobs=app[ENGINE])
    for kind in content_kinds(service):
        app[ENGINE].registry.register(kind)
    app[CONTENT] = service
    app[HEALTH].features.append("content")
    yield
    await asyncio.to_thread(service.rendering.close)


async def engine_ctx(app: web.Application) -> AsyncIterator[None]:
    """The job engine and its kinds (entry points now, features next); no worker runs yet."""
    settings = app[SETTINGS]
    registry = KindRegistry()
    registry.load_entry_points()
    backend = app[BACKEND]
    engine = JobEngine(
        backend.jobs,
        app[BUS],
        registry,
        workers=settings.job_workers,
        lease_seconds=settings.job_lease_seconds,
        backoff=Backoff(settings.job_retry_base, settings.job_retry_cap),
        cache=app[CACHE],
        poll_seconds=settings.job_poll_seconds if backend.multi_node else None,
    )
    app[ENGINE] = engine
    app[JOBS] = JobQueries(backend.jobs, engine)
    app[CRITICAL] = CriticalStatus(engine, app[HEALTH], app[JOBS])
    app[HEALTH].register("jobs", lambda: _engine_check(engine))
    peers = Peers(engine, app[BUS]) if backend.multi_node else None
    if peers is not None:
        peers.start()
    yield
    if peers is not None:
        await peers.close()


async def _engine_check(engine: JobEngine) -> Check:
    stats = engine.stats()
    message = f"{stats['running']} running, {stats['queue_depth']} queued"
    if engine.paused:
        return Check(WARN, f"queue paused; {message}")
    return Check(PASS, message)


async def metrics_ctx(app: web.Application) -> AsyncIterator[None]:
    """Metrics on the bus, the database's commits, the engine, the cache and the activity
    log; before the workers start, so that every job they run is counted (the hub joins in
    hub_ctx)."""
    metrics, backend = app[METRICS], app[BACKEND]
    unsubscribe = app[BUS].subscribe(metrics.jobs.on_event)
    backend.watch_commits(metrics.commits.observe)
    unwatch = [metrics.watch_engine(app[ENGINE]), metrics.watch_cache(app[CACHE]),
               metrics.watch_activity(app[ACTIVITY])]
    yield
    unsubscribe()
    backend.watch_commits(None)
    for undo in unwatch:
        undo()


async def limits_ctx(app: web.Application) -> AsyncIterator[None]:
    """The rate limits in the metrics, and their full buckets forgotten once a window."""
    limiter = app[LIMITER]
    unwatch = app[METRICS].watch_limiter(limiter)
    task = asyncio.create_task(_expire_buckets(limiter, app[SETTINGS].rate_limit_window),
                               name="rate-limit-expiry")
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    unwatch()


async def _expire_buckets(limiter: RateLimiter, every: float) -> None:
    while True:
        await asyncio.sleep(every)
        limiter.expire()


async def workers_ctx(app: web.Application) -> AsyncIterator[None]:
    """Start the workers (after every kind is registered); stop them before the rest stops.

    The stop begins with the process's (``on_stopping``): no job is claimed from then on,
    running ones get the stop's working time to finish and are requeued if they do not.
    """
    engine, lifecycle = app[ENGINE], app[LIFECYCLE]
    await engine.start()
    log.info("job workers started", extra={"engine": repr(engine)})
    timeout = app[SETTINGS].shutdown_timeout
    lifecycle.on_stopping.append(lambda: engine.begin_stop(lifecycle.working_time(timeout)))
    yield
    await engine.stop(lifecycle.working_time(timeout))


async def retention_ctx(app: web.Application) -> AsyncIterator[None]:
    """Pruning by the retention settings, in small batches, every ``retention_interval``."""
    settings = app[SETTINGS]
    retention = Retention(app[BACKEND].retention, app[DOCUMENTS],
                          Policy.from_settings(settings))
    app[RETENTION] = retention
    task = asyncio.create_task(retention.run_forever(settings.retention_interval),
                               name="retention")
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def hub_ctx(app: web.Application) -> AsyncIterator[None]:
    """The WebSocket hub on the bus, its gate, its token signer and its stats ticker."""
    settings = app[SETTINGS]
    tokens = WsTokens(load_secret(settings.data_dir), settings.ws_token_ttl)
    gate = Gate(settings, app[KEYS], tokens, app[BUS], app[LIFECYCLE], idp=app.get(IDP))
    hub = Hub(app[BUS], gate, close_timeout=settings.ws_close_timeout, jobs=app[ENGINE])
    app[WS_TOKENS], app[HUB] = tokens, hub
    unwatch = app[METRICS].watch_hub(hub)
    hub.start()
    task = asyncio.create_task(hub.run_stats(settings.ws_stats_interval), name="ws-stats")
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    await hub.stop()
    unwatch()


async def close_websockets(app: web.Application) -> None:
    """Before open requests are awaited: close every socket (1001, or 1012 on restart)."""
    hub = app.get(HUB)
    if hub is not None:
        await hub.close_all()


async def documents_ctx(app: web.Application) -> AsyncIterator[None]:
    """Blob store, uploads (those no job will read swept; a cancelled ingest's at once),
    documents, search, ``ingest``."""
    settings = app[SETTINGS]
    files, uploads = file_storage(settings.data_dir, settings.shared_dir, app[BACKEND].space)
    partial = await asyncio.to_thread(uploads.prepare)
    blobs: Blobs = files
    pg = app[BACKEND].postgres
    if pg is not None and settings.shared_dir is None:  # several nodes, no shared directory
        from .store.postgres.blobs import PgBlobs  # loads asyncpg: on PostgreSQL only

        blobs = PgBlobs(pg, files)
    partial += await blobs.recover()  # what a crash cut short: downloads, drops
    store = app[BACKEND].documents
    documents = DocumentService(store, app[BUS], blobs, uploads)
    orphaned = await documents.sweep_uploads()  # before workers_ctx starts any job
    if partial or orphaned:
        log.info("cleaned up %d files a crash left and %d orphaned uploads", partial,
                 orphaned)
    app[DOCUMENTS] = documents
    app[SEARCH] = SearchService(store, app[BUS])
    archive = ArchiveLimits(settings.archive_max_mb << 20, settings.archive_max_ratio,
                            scratch=uploads.root)
    ingestor = Ingestor(documents, max_text_bytes=settings.max_text_mb << 20, archive=archive,
                        readers=ReaderPool(settings.extract_processes))
    app[INGESTOR] = ingestor
    app[ENGINE].registry.register(ingestor.kind())
    unsubscribe = app[BUS].subscribe(ingestor.on_event)
    yield
    unsubscribe()
    await ingestor.close()


async def projects_ctx(app: web.Application) -> AsyncIterator[None]:
    """Projects, over the documents (deleting one may delete its documents); ingest
    requests, which name a project."""
    projects = ProjectService(app[BACKEND].projects, app[BUS], app[DOCUMENTS])
    app[PROJECTS] = projects
    app[INGEST] = IngestService(app[DOCUMENTS], projects, app[ENGINE],
                                max_upload_bytes=app[SETTINGS].max_upload_mb << 20)
    yield


async def analytics_ctx(app: web.Application) -> AsyncIterator[None]:
    """Analytics over the jobs' hourly roll-up; request latency and errors (its
    ``performance_metrics``) come from the request metrics, not a bookkeeping of its own."""
    app[ANALYTICS] = AnalyticsService(
        app[BACKEND].analytics, request_stats=app[METRICS].latency,
        cache_seconds=app[SETTINGS].analytics_cache_seconds)
    yield


async def restarts_ctx(app: web.Application) -> AsyncIterator[None]:
    """``POST /admin/restart``: asks the lifecycle for a restart, sockets told first."""
    settings = app[SETTINGS]
    app[RESTARTS] = Restarts(
        app[LIFECYCLE], app[BUS], settings.data_dir / RESTART_STAMP,
        min_interval=settings.restart_min_interval, mode=settings.restart_mode,
        announce=app[HUB].prepare_restart,
    )
    yield


async def dashboard_ctx(app: web.Application) -> AsyncIterator[None]:
    """The dashboard's files, read into memory once (off the loop)."""
    files = await asyncio.to_thread(load_dashboard, static_dir())
    if files.index is None:
        log.warning("dashboard files not found under %s; / answers 503", files.root)
    app[DASHBOARD] = files
    yield


async def ready_ctx(app: web.Application) -> AsyncIterator[None]:
    """Last to start, first to stop: ready only when everything above is up. (The "ready"
    line is logged once the listening socket accepts: see :mod:`.serving`.)"""
    lifecycle = app[LIFECYCLE]
    lifecycle.ready = True
    yield
    lifecycle.begin_stop(app[SETTINGS].shutdown_timeout)
