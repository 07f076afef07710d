"""Keys, WebSocket tokens and connections, broadcasts, and the activity log."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from msgspec import Meta

from ..contract import NOT_BLANK, Body, Query, Reply

RoleName = Literal["viewer", "operator", "admin"]
#: ISO 8601 (``Z`` or an offset; a bare date) or integer milliseconds since the epoch.
Time = Annotated[str, Meta(max_length=64, description="ISO 8601 time, or milliseconds")]


class KeyListQuery(Query):
    limit: Annotated[int, Meta(ge=1, le=500)] = 500
    offset: Annotated[int, Meta(ge=0, le=2**62)] = 0


class Key(Reply):
    """An API key as listed: never its secret."""

    id: str
    name: str
    role: RoleName
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


class KeyList(Reply):
    keys: list[Key]
    limit: int
    offset: int


class NewKey(Body):
    #: something besides spaces (spaces around it are dropped)
    name: Annotated[str, Meta(min_length=1, max_length=100, pattern=NOT_BLANK)]
    role: RoleName = "viewer"


class CreatedKey(Key):
    """The new key, with its secret: shown this once."""

    secret: str


class WhoAmI(Reply):
    id: str
    name: str
    role: RoleName


class WsToken(Reply):
    token: str
    token_type: Literal["ws"]
    role: RoleName
    expires_at: datetime
    expires_in: float


class ConnectionsQuery(Query):
    limit: Annotated[int, Meta(ge=1, le=10_000)] = 100


class Socket(Reply):
    id: str
    endpoint: str
    target: str | None
    ip: str
    key_id: str | None
    role: RoleName
    auth: str
    origin: str | None
    opened_at: datetime
    sent: int
    queued_bytes: int
    subscriptions: list[str] | None


class Connections(Reply):
    total: int
    by_endpoint: dict[str, int]
    ips: int
    slow_closed: int
    per_ip: dict[str, int]
    limit_per_ip: int
    accepted: int
    closed: int
    refused: dict[str, int]
    events: int
    messages: int
    connections: list[Socket]


class Broadcast(Body):
    data: dict[str, Any]


class Published(Reply):
    published: str
    timestamp: datetime


class ActivityQuery(Query):
    """``type`` (comma-separated), ``actor``, ``target``, ``since``/``until``, ``cursor``."""

    type: list[Annotated[str, Meta(pattern=r"^[a-z_.]{1,64}$")]] = []
    actor: Annotated[str, Meta(max_length=200)] | None = None
    target: Annotated[str, Meta(max_length=200)] | None = None
    since: Time | None = None
    until: Time | None = None
    limit: Annotated[int, Meta(ge=1, le=500)] = 50
    #: the last page's ``next_cursor``
    cursor: Annotated[str, Meta(pattern=r"^[0-9]{1,19}$")] | None = None


class Actor(Reply):
    id: str
    name: str | None


class ActivityLine(Reply):
    id: str
    ts: datetime
    type: str
    actor: Actor
    ip: str | None
    correlation_id: str | None
    target: str | None
    outcome: str
    data: dict[str, Any]


class ActivityPage(Reply):
    activity: list[ActivityLine]
    count: int
    limit: int
    next_cursor: str | None

