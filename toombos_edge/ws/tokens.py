"""Short-lived WebSocket tokens: signed, expiring, bound to one API key and its role.

A browser cannot set headers on a WebSocket, so it puts a credential in the URL. Rather
than its long-lived API key, it asks ``POST /api/auth/ws-token`` for one of these: it opens
sockets for ``TOOMBOS_WS_TOKEN_TTL`` seconds and dies with the key that asked for it. One
asked for with an identity-provider token is bound to its subject instead, and dies with
that token (at its expiry, if sooner).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import orjson

from ..keys import Principal, Role, write_secret_file

PREFIX = "wst_"
SECRET_FILE = "ws-token.key"  # noqa: S105 - a file name, not a secret
_MIN_SECRET_CHARS = 64


@dataclass(frozen=True, slots=True)
class Claims:
    key_id: str  #: the key's id, or the token subject's when ``key_bound`` is false
    role: Role
    expires_at: int  #: ms since the epoch
    key_bound: bool = True  #: dies with its API key (else with an identity-provider token)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class WsTokens:
    """Issues and checks tokens; ``clock`` returns seconds since the epoch."""

    def __init__(self, secret: bytes, ttl: float, clock: Callable[[], float] = time.time):
        self._secret = secret
        self.ttl = ttl
        self._clock = clock

    def __repr__(self) -> str:
        return f"<WsTokens ttl={self.ttl}>"  # never the secret

    def issue(self, principal: Principal, until: int | None = None) -> tuple[str, Claims]:
        """A token for ``principal``; with ``until`` (ms), for an identity-provider token's
        subject that expires then: no key is behind it, and it lives no longer."""
        expires_at = int((self._clock() + self.ttl) * 1000)
        claims = Claims(principal.id, principal.role,
                        expires_at if until is None else min(expires_at, until), until is None)
        body: dict[str, object] = {"k": claims.key_id, "r": claims.role.name,
                                   "e": claims.expires_at}
        if not claims.key_bound:
            body["s"] = 1
        payload = _b64(orjson.dumps(body))
        return f"{PREFIX}{payload}.{self._sign(payload)}", claims

    def verify(self, token: str) -> Claims | None:
        """The claims of a genuine, unexpired token; None for anything else."""
        payload, _, signature = token.removeprefix(PREFIX).partition(".")
        if not token.startswith(PREFIX) or not hmac.compare_digest(
            signature.encode(), self._sign(payload).encode()
        ):
            return None
        try:
            body = orjson.loads(_unb64(payload))
            claims = Claims(str(body["k"]), Role[body["r"]], int(body["e"]), "s" not in body)
        except (binascii.Error, ValueError, KeyError, TypeError):
            return None
        return claims if claims.expires_at > self._clock() * 1000 else None

    def _sign(self, payload: str) -> str:
        return _b64(hmac.new(self._secret, payload.encode(), hashlib.sha256).digest())


def load_secret(data_dir: Path) -> bytes:
    """The signing secret, made on first start (mode 0600, next to the database)."""
    path = data_dir / SECRET_FILE
    if not path.exists():
        write_secret_file(path, secrets.token_hex(32))
    text = path.read_text(encoding="utf-8").strip()
    if len(text) < _MIN_SECRET_CHARS:
        raise ValueError(f"{path}: too short for a signing secret; delete it to make a new one")
    return text.encode("ascii")
