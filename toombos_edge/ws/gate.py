"""The gate in front of every WebSocket, before the upgrade: origin, per-IP limit, auth.

Refusals are ordinary HTTP answers with the JSON error body: 403 for an origin, 503 with
``Retry-After`` when the client IP already holds ``TOOMBOS_WS_MAX_PER_IP`` sockets, 401 for a
missing or bad credential: an API key, a WS token or, when configured, an identity-provider
token (checked by the same verifier as over HTTP). Each one is published as a
``ws_connection`` event with its reason.

A request without an ``Origin`` comes from a program, not a browser (wscat, scripts): it is
let through only with a credential, since the origin check exists to stop pages in a browser
from riding on what the browser holds. Anonymous read-only access
(``TOOMBOS_WS_AUTH=origin``) needs an origin from ``TOOMBOS_ALLOWED_ORIGINS`` itself, never
mere same-origin, which a DNS-rebinding page could fake.
"""

from __future__ import annotations

from aiohttp import hdrs, web

from ..client_ip import client_ip
from ..errors import EdgeError, Forbidden, Unauthorized, Unavailable
from ..events import WS_CONNECTION, Event, EventBus
from ..idp import TokenVerifier, looks_like_jwt
from ..keys import KeyService, Role, bearer_secret, plain_secret
from ..lifecycle import Lifecycle
from ..settings import Settings
from .connection import Endpoint, Peer
from .tokens import PREFIX, WsTokens

RETRY_AFTER_SECONDS = 5
#: Endpoints an anonymous browser may open: the shared feeds, not personal messages.
ANONYMOUS_ENDPOINTS = frozenset({Endpoint.jobs, Endpoint.status, Endpoint.dashboard})


class IpSlots:
    """Open sockets per client IP, across every WebSocket endpoint."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._open: dict[str, int] = {}

    def __repr__(self) -> str:
        return f"<IpSlots ips={len(self._open)} open={sum(self._open.values())}>"

    def take(self, ip: str) -> bool:
        count = self._open.get(ip, 0)
        if count >= self.limit:
            return False
        self._open[ip] = count + 1
        return True

    def give(self, ip: str) -> None:
        count = self._open.get(ip, 0) - 1
        if count > 0:
            self._open[ip] = count
        else:
            self._open.pop(ip, None)

    def counts(self) -> dict[str, int]:
        return dict(self._open)


class Gate:
    """Admits a WebSocket request or refuses it; an admitted one holds an IP slot."""

    def __init__(
        self, settings: Settings, keys: KeyService, tokens: WsTokens, bus: EventBus,
        lifecycle: Lifecycle, *, idp: TokenVerifier | None = None,
    ) -> None:
        self._settings = settings
        self._idp = idp
        self._lifecycle = lifecycle
        self._keys = keys
        self._tokens = tokens
        self._bus = bus
        self.slots = IpSlots(settings.ws_max_per_ip)
        self.refused: dict[str, int] = {}

    def __repr__(self) -> str:
        return f"<Gate {self.slots!r} refused={sum(self.refused.values())}>"

    async def admit(self, request: web.Request, endpoint: Endpoint) -> Peer:
        """The peer, holding one slot of its IP until ``release``; else an EdgeError."""
        ip = self.ip_of(request)
        if self._lifecycle.stopping:
            # The hub has closed (or is closing) its sockets: one opened now would hold the
            # stop until its deadline. The client reconnects to the next process.
            stopping = Unavailable("the server is stopping or restarting; reconnect shortly",
                                   headers={hdrs.RETRY_AFTER: "1"})
            self.refuse(request, ip, stopping, "stopping")
            raise stopping
        try:
            origin = self._check_origin(request)
        except EdgeError as exc:
            self.refuse(request, ip, exc, "origin")
            raise
        if not self.slots.take(ip):
            full = Unavailable(f"too many WebSockets from {ip} (at most {self.slots.limit})",
                               headers={hdrs.RETRY_AFTER: str(RETRY_AFTER_SECONDS)})
            self.refuse(request, ip, full, "per_ip_limit")
            raise full
        try:
            return await self._authenticate(request, endpoint, ip, origin)
        except EdgeError as exc:
            self.slots.give(ip)
            self.refuse(request, ip, exc, "auth")
            raise

    def release(self, peer: Peer) -> None:
        self.slots.give(peer.ip)

    def ip_of(self, request: web.Request) -> str:
        forwarded = ",".join(request.headers.getall("X-Forwarded-For", ()))
        return client_ip(request.remote, forwarded, self._settings.trusted_proxies)

    def refuse(self, request: web.Request, ip: str, exc: EdgeError, reason: str) -> None:
        """Count and publish a refusal (the path only: a query may hold a token)."""
        self.refused[reason] = self.refused.get(reason, 0) + 1
        self._bus.publish(Event.data(WS_CONNECTION, {
            "action": "refused", "reason": reason, "status": exc.status,
            "message": exc.message, "path": request.path, "ip": ip,
            "origin": request.headers.get(hdrs.ORIGIN),
        }))

    def _check_origin(self, request: web.Request) -> str | None:
        origin = request.headers.get(hdrs.ORIGIN)
        if origin is None:
            if _credential(request) is None:
                raise Forbidden("a WebSocket without an Origin header needs a token")
            return None
        if origin in self._settings.allowed_origins or origin == _own_origin(request):
            return origin
        raise Forbidden(f"origin {origin!r} is not allowed")

    async def _authenticate(
        self, request: web.Request, endpoint: Endpoint, ip: str, origin: str | None
    ) -> Peer:
        header = request.headers.get(hdrs.AUTHORIZATION)
        if header is not None:
            secret = bearer_secret(header)
            if secret is None:
                raise Unauthorized("send 'Authorization: Bearer <key>'")
            return await self._by_key(secret, ip, origin, "header")
        token = plain_secret(request.query.get("token", ""))
        if token:
            if token.startswith(PREFIX):
                return self._by_ws_token(token, ip, origin)
            return await self._by_key(token, ip, origin, "api_key")
        return self._anonymous(endpoint, ip, origin)

    async def _by_key(self, secret: str, ip: str, origin: str | None, via: str) -> Peer:
        key = self._keys.authenticate(secret)
        if key is not None:
            return Peer(ip, key.role, key.id, via, origin)
        if self._idp is not None and looks_like_jwt(secret):
            identity = await self._idp.verify(secret)
            return Peer(ip, identity.role, identity.id, "jwt", origin)
        raise Unauthorized("invalid or revoked API key")

    def _by_ws_token(self, token: str, ip: str, origin: str | None) -> Peer:
        claims = self._tokens.verify(token)
        if claims is None:
            raise Unauthorized("invalid or expired WebSocket token")
        if claims.key_bound and self._keys.active_key(claims.key_id) is None:
            raise Unauthorized("the key behind this WebSocket token was revoked")
        return Peer(ip, claims.role, claims.key_id, "ws_token", origin)

    def _anonymous(self, endpoint: Endpoint, ip: str, origin: str | None) -> Peer:
        if (
            self._settings.ws_auth == "origin"
            and origin in self._settings.allowed_origins
            and endpoint in ANONYMOUS_ENDPOINTS
        ):
            return Peer(ip, Role.viewer, None, "origin", origin)
        raise Unauthorized(
            "missing token: send 'Authorization: Bearer <key>' or ?token=<key or WS token>"
        )


def _credential(request: web.Request) -> str | None:
    return request.headers.get(hdrs.AUTHORIZATION) or request.query.get("token") or None


def _own_origin(request: web.Request) -> str:
    return f"{request.scheme}://{request.host}"
