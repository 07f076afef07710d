"""``create_app(settings)``: the aiohttp application, its state and its lifetimes."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from collections.abc import AsyncIterator

from aiohttp import web

from .api.middleware import edge_middleware, on_prepare
from .appkeys import BUS, DATABASE, HEALTH, KEYS, LIFECYCLE, ROUTE_ROLES, SETTINGS
from .events import EventBus
from .health import HealthService, Lifecycle
from .keys import KeyService
from .routes import setup_routes
from .settings import Settings
from .store import Database

log = logging.getLogger(__name__)

KEY_REFRESH_SECONDS = 2.0


def create_app(settings: Settings) -> web.Application:
    """Build the application; nothing is opened until it starts."""
    app = web.Application(
        middlewares=[edge_middleware],
        client_max_size=settings.max_body_kb * 1024,
    )
    app[SETTINGS] = settings
    app[LIFECYCLE] = Lifecycle()
    app[BUS] = EventBus()
    app[ROUTE_ROLES] = {}
    app.on_response_prepare.append(on_prepare)
    app.cleanup_ctx.extend([database_ctx, keys_ctx, health_ctx, ready_ctx])
    setup_routes(app)
    return app


def prepare_data_dir(settings: Settings) -> None:
    """The data dir and its private cache folder (mode 0700: cached content is private)."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    cache = settings.data_dir / "cache"
    cache.mkdir(mode=0o700, exist_ok=True)
    cache.chmod(0o700)


async def database_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    prepare_data_dir(settings)
    db = Database(
        settings.db_path,
        synchronous=settings.db_synchronous,
        readers=settings.db_readers,
        batch_max=settings.db_batch_max,
    )
    await db.open()
    app[DATABASE] = db
    app[LIFECYCLE].started = True
    log.info("database open", extra={"path": str(db.path), "schema": db.schema_version})
    yield
    await db.close()


async def keys_ctx(app: web.Application) -> AsyncIterator[None]:
    keys = KeyService(app[DATABASE], app[BUS])
    app[KEYS] = keys
    secret = await keys.ensure_admin(app[SETTINGS].data_dir / "admin.key")
    await keys.refresh()
    if secret is not None:
        # Printed, never logged: this is the one time the secret is shown.
        print(
            f"Created the first admin API key (also in {app[SETTINGS].data_dir}/admin.key, "
            f"mode 0600); it is not shown again:\n{secret}",
            file=sys.stderr,
            flush=True,
        )
    task = asyncio.create_task(_refresh_keys(keys), name="key-refresh")
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    await keys.flush_usage()


async def _refresh_keys(keys: KeyService) -> None:
    """Pick up keys changed from the CLI, and write ``last_used_at`` in batches."""
    while True:
        await asyncio.sleep(KEY_REFRESH_SECONDS)
        try:
            await keys.refresh()
        except Exception:
            log.exception("refreshing API keys failed")


async def health_ctx(app: web.Application) -> AsyncIterator[None]:
    app[HEALTH] = HealthService(app[DATABASE], app[SETTINGS].data_dir, app[LIFECYCLE])
    yield


async def ready_ctx(app: web.Application) -> AsyncIterator[None]:
    """Last to start, first to stop: ready only when everything above is up."""
    lifecycle = app[LIFECYCLE]
    lifecycle.ready = True
    log.info("ready", extra={"host": app[SETTINGS].host, "port": app[SETTINGS].port})
    yield
    lifecycle.ready = False
    lifecycle.stopping = True
