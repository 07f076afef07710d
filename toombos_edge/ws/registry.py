"""Which socket listens to what: the hub's indexes, kept in step as sockets come and go.

A dashboard takes every event; a /ws/jobs socket every job event until it subscribes to
chosen jobs; a /ws/status socket one job; content and session sockets content events and
the personal messages of their client or session.
"""

from __future__ import annotations

from typing import Any

from ..events import Address
from .connection import Connection, Endpoint


class Registry:
    """Open sockets, indexed for delivery."""

    def __init__(self) -> None:
        self.all: set[Connection] = set()
        self.dashboards: set[Connection] = set()
        self.job_feeds: set[Connection] = set()  #: /ws/jobs sockets taking every job event
        self.by_job: dict[str, set[Connection]] = {}  #: chosen jobs, and /ws/status
        self.content: set[Connection] = set()  #: /ws/content and /ws/session
        self.personal: dict[Address, set[Connection]] = {}

    def __repr__(self) -> str:
        return f"<Registry open={len(self.all)} jobs_watched={len(self.by_job)}>"

    def add(self, conn: Connection) -> None:
        self.all.add(conn)
        if conn.endpoint is Endpoint.dashboard:
            self.dashboards.add(conn)
        elif conn.endpoint is Endpoint.jobs:
            self.job_feeds.add(conn)
        elif conn.endpoint is Endpoint.status:
            self.by_job.setdefault(str(conn.target), set()).add(conn)
        else:
            self.content.add(conn)
            self.personal.setdefault(address(conn), set()).add(conn)

    def remove(self, conn: Connection) -> bool:
        """Forget a socket; False if it was not here."""
        if conn not in self.all:
            return False
        self.all.discard(conn)
        self.dashboards.discard(conn)
        self.job_feeds.discard(conn)
        self.content.discard(conn)
        for job_id in conn.subscriptions or ():
            _discard(self.by_job, job_id, conn)
        if conn.endpoint is Endpoint.status:
            _discard(self.by_job, str(conn.target), conn)
        elif conn.endpoint in (Endpoint.content, Endpoint.session):
            _discard(self.personal, address(conn), conn)
        return True

    def subscribe(self, conn: Connection, job_id: str) -> None:
        """Narrow a /ws/jobs socket to chosen jobs; ``*`` takes every job again."""
        if job_id == "*":
            self.unsubscribe(conn, "*")
            conn.subscriptions = None
            self.job_feeds.add(conn)
            return
        if conn.subscriptions is None:
            self.job_feeds.discard(conn)
            conn.subscriptions = set()
        conn.subscriptions.add(job_id)
        self.by_job.setdefault(job_id, set()).add(conn)

    def unsubscribe(self, conn: Connection, job_id: str) -> None:
        """Stop one job (``*``: stop everything, chosen jobs included)."""
        if job_id == "*":
            self.job_feeds.discard(conn)
            for chosen in conn.subscriptions or ():
                _discard(self.by_job, chosen, conn)
            conn.subscriptions = set()
        elif conn.subscriptions is not None and job_id in conn.subscriptions:
            conn.subscriptions.discard(job_id)
            _discard(self.by_job, job_id, conn)

    def by_endpoint(self) -> dict[str, int]:
        counts = dict.fromkeys((e.value for e in Endpoint), 0)
        for conn in self.all:
            counts[conn.endpoint.value] += 1
        return counts


def address(conn: Connection) -> Address:
    """Where personal messages for this socket are addressed."""
    return ("client" if conn.endpoint is Endpoint.content else "session", str(conn.target))


def _discard(index: dict[Any, set[Connection]], key: Any, conn: Connection) -> None:
    conns = index.get(key)
    if conns is not None:
        conns.discard(conn)
        if not conns:
            del index[key]
