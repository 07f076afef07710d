"""API keys and roles: secrets shown once, kept as SHA-256, checked in constant time."""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path
from typing import Protocol

from .errors import Invalid, NotFound
from .events import KEY_CREATED, KEY_REVOKED, NOTICED, Event, EventBus
from .events_wire import is_remote
from .ids import new_id, now_ms
from .records.key import ApiKey, Role
from .store.keys import KeyStore

__all__ = ["ApiKey", "KeyService", "Principal", "Role", "bearer_secret", "hash_secret",
           "plain_secret", "write_secret_file"]

SECRET_PREFIX = "tbe_"  # noqa: S105 - a prefix that makes leaked keys easy to spot


class Principal(Protocol):
    """Who a request acts as: an API key, or the subject of an identity-provider token."""

    @property
    def id(self) -> str: ...
    @property
    def name(self) -> str | None: ...
    @property
    def role(self) -> Role: ...


def hash_secret(secret: str) -> bytes:
    return hashlib.sha256(secret.encode("utf-8")).digest()


def plain_secret(text: str) -> str:
    """A key as sent, without surrounding blanks or one pair of double quotes.

    The public dashboard stores its key JSON-encoded on one page and reads it raw on
    others, so it sends ``Bearer "tbe_…"`` as often as ``Bearer tbe_…``: the same key.
    """
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] == '"':
        text = text[1:-1].strip()
    return text


def bearer_secret(header: str) -> str | None:
    """The key of an ``Authorization: Bearer <key>`` header (None: no bearer key in it).

    The one place a key is read out of a header: the HTTP pipeline and the WebSocket gate
    both use it.
    """
    scheme, _, secret = header.partition(" ")
    if scheme.lower() != "bearer":
        return None
    return plain_secret(secret) or None


class KeyService:
    """Creates, lists, revokes and checks keys. Checks are in memory; ``refresh`` reloads."""

    def __init__(self, store: KeyStore, bus: EventBus) -> None:
        self._store = store
        self._bus = bus
        self._active: dict[bytes, ApiKey] = {}
        self._used: dict[str, int] = {}

    def __repr__(self) -> str:
        return f"<KeyService active={len(self._active)} unflushed={len(self._used)}>"

    async def create(self, name: str, role: Role) -> tuple[ApiKey, str]:
        """A new key and its secret; the secret is never stored or shown again."""
        name = name.strip()
        if not name or len(name) > 100:
            raise Invalid("key name must be 1 to 100 characters")
        secret = SECRET_PREFIX + secrets.token_urlsafe(32)
        key = ApiKey(new_id("key"), name, role, hash_secret(secret), now_ms())
        await self._store.insert(key)
        self._active[key.secret_hash] = key
        self._bus.publish(Event.data(KEY_CREATED, {"key_id": key.id, "name": key.name,
                                                   "role": key.role.name}))
        return key, secret

    async def list_keys(self, limit: int = -1, offset: int = 0) -> list[ApiKey]:
        """Keys oldest first; ``limit`` -1 means all."""
        return await self._store.page(limit, offset)

    async def revoke(self, key_id: str) -> ApiKey:
        revocation = await self._store.revoke(key_id, now_ms())
        if revocation is None:
            raise NotFound(f"no API key {key_id}")
        key, revoked_now = revocation
        self._active.pop(key.secret_hash, None)
        # Announced once, by the call that revoked it, whether or not this process had
        # loaded the key: the command line loads none.
        if revoked_now:
            self._bus.publish(Event.data(KEY_REVOKED, {"key_id": key.id}))
        return key

    def on_event(self, event: Event) -> None:
        """The bus subscriber: a key another node revoked stops working here at once, not
        at the next refresh, which then finds nothing to announce (that node did)."""
        if event.type != KEY_REVOKED or not is_remote(event):
            return
        key_id = event.body.get("data", {}).get("key_id")
        for digest in [d for d, key in self._active.items() if key.id == key_id]:
            del self._active[digest]

    def authenticate(self, secret: str) -> ApiKey | None:
        """The active key with this secret, or None. Never touches the database."""
        digest = hash_secret(secret)
        key = self._active.get(digest)
        if key is None or not hmac.compare_digest(key.secret_hash, digest):
            return None
        self._used[key.id] = now_ms()
        return key

    def active_key(self, key_id: str) -> ApiKey | None:
        """The active key with this id (a WebSocket token names its key by id)."""
        return next((key for key in self._active.values() if key.id == key_id), None)

    async def refresh(self) -> list[ApiKey]:
        """Reload active keys (the CLI may have changed them); returns keys no longer active.

        Each key that stopped being active is announced as ``key_revoked`` (``NOTICED``:
        its activity line is the revoker's, the command line's or another node's).
        """
        await self.flush_usage()
        fresh = {key.secret_hash: key for key in await self._store.active()}
        gone = [key for digest, key in self._active.items() if digest not in fresh]
        self._active = fresh
        for key in gone:
            self._bus.publish(Event(KEY_REVOKED, {"data": {"key_id": key.id}}, note=NOTICED))
        return gone

    async def flush_usage(self) -> None:
        """Write the batched ``last_used_at`` stamps (one write for many requests)."""
        if not self._used:
            return
        used, self._used = self._used, {}
        await self._store.record_use(used)

    async def ensure_admin(self, key_file: Path) -> str | None:
        """On a database with no keys, create an admin key and write it to ``key_file``."""
        if await self._store.count():
            return None
        _key, secret = await self.create("admin (first start)", Role.admin)
        write_secret_file(key_file, secret)
        return secret


def write_secret_file(path: Path, secret: str) -> None:
    """Write a secret readable by the owner only (mode 0600 from the first byte)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(secret + "\n")
