"""The storage backend a node runs on: the SQLite file in its data dir, or PostgreSQL.

Part of the composition root (with :mod:`.app` and :mod:`.cli`): the one place that
chooses a backend. :func:`open_backend` opens the database and builds every store of
``store/<aggregate>.py``'s protocols on it; the rest of the server sees only the
protocols. ``TOOMBOS_DATABASE_URL`` set means PostgreSQL (several nodes may share it),
unset the SQLite file (one node).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .settings import Settings
from .store.activity import ActivityStore
from .store.analytics import AnalyticsStore
from .store.cache import InvalidationHistory
from .store.content import ContentStore
from .store.documents import DocumentStore
from .store.health import HealthStore
from .store.jobs import JobStore
from .store.keys import KeyStore
from .store.projects import ProjectStore
from .store.retention import RetentionStore
from .store.space import SpaceState
from .store.sqlite.activity import SqliteActivityStore
from .store.sqlite.analytics import SqliteAnalyticsStore
from .store.sqlite.cache import SqliteInvalidationHistory
from .store.sqlite.content import SqliteContentStore
from .store.sqlite.database import Database
from .store.sqlite.documents import SqliteDocumentStore
from .store.sqlite.health import SqliteHealthStore
from .store.sqlite.jobs import SqliteJobStore
from .store.sqlite.keys import SqliteKeyStore
from .store.sqlite.projects import SqliteProjectStore
from .store.sqlite.retention import SqliteRetentionStore

if TYPE_CHECKING:
    from .store.postgres.database import PgDatabase

log = logging.getLogger(__name__)

#: ``(statements, seconds)`` of one commit, for the metrics.
CommitObserver = Callable[[int, float], None]


@dataclass(slots=True)
class Backend:
    """Every store of one open database, and what the node needs of the database itself.

    ``sqlite`` is the SQLite database (None on PostgreSQL), ``postgres`` the PostgreSQL one
    (None on SQLite): the few parts that are one backend's only (the events between nodes,
    backups) look at these. ``space`` is where a write that found no room is reported.
    """

    name: str  #: "sqlite" or "postgresql"
    jobs: JobStore
    documents: DocumentStore
    projects: ProjectStore
    content: ContentStore
    keys: KeyStore
    activity: ActivityStore
    invalidations: InvalidationHistory
    analytics: AnalyticsStore
    health: HealthStore
    retention: RetentionStore
    space: SpaceState
    sqlite: Database | None = None
    postgres: PgDatabase | None = None

    @property
    def multi_node(self) -> bool:
        """Other nodes may share this database (their jobs, their events)."""
        return self.postgres is not None

    def watch_commits(self, observer: CommitObserver | None) -> None:
        """Report each commit to ``observer``: SQLite's group commits (a batch of writes
        each), PostgreSQL's transactions (one each, on their own connections)."""
        if self.sqlite is not None:
            self.sqlite.on_commit = observer
        if self.postgres is not None:
            self.postgres.on_commit = observer

    async def close(self) -> None:
        if self.sqlite is not None:
            await self.sqlite.close()
        if self.postgres is not None:
            await self.postgres.close()


async def open_backend(settings: Settings, *, readers: int | None = None,
                       pool_size: int | None = None) -> Backend:
    """Open the database the settings name (migrating it) and build its stores.

    Raises ``SchemaTooNew`` for a schema newer than this server, ``DatabaseUnavailable``
    for a PostgreSQL that cannot be reached.
    """
    if settings.database_url:
        return await _open_postgres(settings, pool_size)
    return await _open_sqlite(settings, readers)


async def _open_sqlite(settings: Settings, readers: int | None) -> Backend:
    db = Database(
        settings.db_path,
        synchronous=settings.db_synchronous,
        readers=readers or settings.db_readers,
        batch_max=settings.db_batch_max,
        max_size_mb=settings.db_max_size_mb,
    )
    await db.open()
    log.info("database open", extra={"path": str(db.path), "schema": db.schema_version})
    return Backend(
        "sqlite", SqliteJobStore(db), SqliteDocumentStore(db), SqliteProjectStore(db),
        SqliteContentStore(db), SqliteKeyStore(db), SqliteActivityStore(db),
        SqliteInvalidationHistory(db), SqliteAnalyticsStore(db), SqliteHealthStore(db),
        SqliteRetentionStore(db), db.space, sqlite=db,
    )


async def _open_postgres(settings: Settings, pool_size: int | None) -> Backend:
    # Imported here: a node on SQLite never loads the PostgreSQL driver (startup memory).
    from .store.postgres.activity import PgActivityStore
    from .store.postgres.analytics import PgAnalyticsStore
    from .store.postgres.cache import PgInvalidationHistory
    from .store.postgres.content import PgContentStore
    from .store.postgres.database import PgDatabase
    from .store.postgres.documents import PgDocumentStore
    from .store.postgres.health import PgHealthStore
    from .store.postgres.jobs import PgJobStore
    from .store.postgres.keys import PgKeyStore
    from .store.postgres.projects import PgProjectStore
    from .store.postgres.retention import PgRetentionStore

    db = PgDatabase(settings.database_url, pool_size=pool_size or settings.db_pool_size)
    await db.open()
    log.info("database open", extra={"database": repr(db), "schema": db.schema_version})
    return Backend(
        "postgresql", PgJobStore(db), PgDocumentStore(db), PgProjectStore(db),
        PgContentStore(db), PgKeyStore(db), PgActivityStore(db), PgInvalidationHistory(db),
        PgAnalyticsStore(db), PgHealthStore(db, db.space), PgRetentionStore(db), db.space,
        postgres=db,
    )
