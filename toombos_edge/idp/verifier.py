"""Bearer tokens from an identity provider (Supabase, Auth0, Keycloak …), checked by PyJWT.

A token is let in when its signature verifies with the configured secret, or with a key of
the provider's JWKS, under an algorithm the settings accept (never ``none``; never HS*
against a JWKS); its ``iss`` and ``aud`` are the configured ones; it has not expired
(within the leeway); and its role claim maps to one of our roles. The token itself is never
kept, logged or quoted in an error: its requests act as its ``sub``, with its name claim.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import Forbidden, SettingsError, Unauthorized, Unavailable
from ..keys import Role
from ..settings import Settings
from .jwks import Jwks, is_url

if TYPE_CHECKING:
    import jwt

log = logging.getLogger(__name__)

#: Longest claim value quoted in an error or kept as a name.
_SHOWN_CHARS = 100


def load_pyjwt() -> None:
    """Import PyJWT, and cryptography with it, now rather than at the first token.

    Deferred: together they add about 9 MB of resident memory and 0.15 s to a start
    (bench.startup), which a server without an identity provider (the default) never needs.
    A verifier calls this when it is made; the code that uses PyJWT imports it locally, which
    is then a lookup in ``sys.modules``.
    """
    import jwt  # noqa: F401


def _reason(exc: jwt.PyJWTError) -> str:
    """Why a token was refused, most specific first (the exceptions subclass one another)."""
    import jwt  # loaded with the verifier: see load_pyjwt

    reasons: tuple[tuple[type[jwt.PyJWTError], str], ...] = (
        (jwt.ExpiredSignatureError, "the token has expired"),
        (jwt.ImmatureSignatureError, "the token is not valid yet"),
        (jwt.InvalidAudienceError, "the token is for another audience"),
        (jwt.InvalidIssuerError, "the token is from another issuer"),
        (jwt.InvalidSignatureError, "the token's signature does not verify"),
        (jwt.InvalidAlgorithmError, "the token's algorithm is not accepted"),
    )
    return next((text for kind, text in reasons if isinstance(exc, kind)),
                "the token is not valid")


def looks_like_jwt(credential: str) -> bool:
    """A compact JWS (header.payload.signature): no API key or WS token has two dots."""
    return credential.count(".") == 2


@dataclass(frozen=True, slots=True)
class Identity:
    """Who a verified token speaks for: the principal of its requests."""

    id: str  #: the token's ``sub``
    name: str | None  #: the name claim, when the token has one
    role: Role
    expires_at: int  #: ms since the epoch (the token's ``exp``)


@dataclass(frozen=True, slots=True)
class TokenRules:
    """What a token must be, from the ``TOOMBOS_JWT_*`` settings."""

    algorithms: tuple[str, ...]
    issuer: str
    audience: tuple[str, ...]
    leeway: float
    role_claim: str
    roles: Mapping[str, Role]
    name_claim: str

    @classmethod
    def from_settings(cls, settings: Settings) -> TokenRules:
        roles = dict(pair.rsplit("=", 1) for pair in settings.jwt_roles)
        return cls(settings.jwt_accepted_algorithms, settings.jwt_issuer,
                   settings.jwt_audience, settings.jwt_leeway, settings.jwt_role_claim,
                   {value: Role[role] for value, role in roles.items()},
                   settings.jwt_name_claim)


class TokenVerifier:
    """Checks tokens against a shared ``secret`` or a ``jwks`` (exactly one of them)."""

    def __init__(self, rules: TokenRules, *, secret: str = "", jwks: Jwks | None = None
                 ) -> None:
        if bool(secret) == (jwks is not None):
            raise ValueError("a token verifier needs exactly one of a secret and a JWKS")
        self.rules, self.jwks = rules, jwks
        self._secret = secret
        load_pyjwt()
        self.accepted = self.refused = 0

    @classmethod
    def from_settings(cls, settings: Settings) -> TokenVerifier | None:
        """The verifier the settings describe; None when tokens are off (the default)."""
        if not settings.jwt_enabled:
            return None
        rules = TokenRules.from_settings(settings)
        if settings.jwt_secret:
            return cls(rules, secret=settings.jwt_secret)
        return cls(rules, jwks=Jwks(
            settings.jwt_jwks, rules.algorithms, timeout=settings.jwt_jwks_timeout,
            min_interval=settings.jwt_jwks_min_interval, max_age=settings.jwt_jwks_max_age))

    async def start(self) -> None:
        """Load the JWKS. A file that does not load stops the start (it is configuration);
        an unreachable URL does not (the provider may come back; tokens wait for it)."""
        if self.jwks is None:
            return
        try:
            await self.jwks.load()
        except (OSError, ValueError) as exc:
            if not is_url(self.jwks.source):
                raise SettingsError(f"TOOMBOS_JWT_JWKS: {self.jwks.source} is no usable "
                                    f"JWKS: {exc}") from None
            log.warning("the identity provider's keys could not be fetched at start",
                        extra={"source": self.jwks.source, "error": str(exc) or type(exc).__name__})

    async def close(self) -> None:
        if self.jwks is not None:
            await self.jwks.close()

    def __repr__(self) -> str:  # never the secret
        source = "secret" if self.jwks is None else repr(self.jwks)
        return f"<TokenVerifier {source} accepted={self.accepted} refused={self.refused}>"

    async def verify(self, token: str) -> Identity:
        """The identity of a genuine token; Unauthorized (or Forbidden: no role) otherwise,
        and Unavailable while no key of the provider could be had."""
        try:
            identity = self._identity(self._decode(token, await self._key(token)))
        except (Unauthorized, Forbidden, Unavailable):
            self.refused += 1
            raise
        self.accepted += 1
        return identity

    async def _key(self, token: str) -> Any:
        import jwt  # loaded with the verifier: see load_pyjwt

        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise Unauthorized("the token is malformed") from None
        algorithm = header.get("alg")
        if algorithm not in self.rules.algorithms:
            raise Unauthorized("the token's algorithm is not accepted (accepted: "
                               f"{', '.join(self.rules.algorithms)})")
        if self.jwks is None:
            return self._secret
        kid = header.get("kid")
        key = await self.jwks.find(kid if isinstance(kid, str) else None, algorithm)
        if key is None and not self.jwks.held:
            # Our trouble, not the token's: a 401 would make a client drop a good token.
            retry = str(max(1, math.ceil(self.jwks.min_interval)))
            raise Unavailable("the identity provider's signing keys could not be fetched; "
                              "try again later", headers={"Retry-After": retry})
        if key is None:
            raise Unauthorized("the token's signing key is not one of the provider's keys")
        return key

    def _decode(self, token: str, key: Any) -> dict[str, Any]:
        import jwt  # loaded with the verifier: see load_pyjwt

        rules = self.rules
        try:
            claims: dict[str, Any] = jwt.decode(
                token, key, algorithms=list(rules.algorithms), audience=list(rules.audience),
                issuer=rules.issuer, leeway=rules.leeway,
                options={"require": ["exp", "iss", "aud", "sub"]},
            )
        except jwt.MissingRequiredClaimError as exc:
            raise Unauthorized(f"the token has no '{exc.claim}' claim") from None
        except jwt.PyJWTError as exc:
            raise Unauthorized(_reason(exc)) from None
        return claims

    def _identity(self, claims: dict[str, Any]) -> Identity:
        sub = claims["sub"]
        if not isinstance(sub, str) or not sub:
            raise Unauthorized("the token's 'sub' claim is not a string")
        name = claim(claims, self.rules.name_claim) if self.rules.name_claim else None
        return Identity(sub[:200], name[:200] if isinstance(name, str) else None,
                        self._role(claim(claims, self.rules.role_claim)),
                        int(claims["exp"] * 1000))

    def _role(self, value: Any) -> Role:
        """Our role for the claim's value; of a list of values, the highest mapped."""
        roles = self.rules.roles
        values = value if isinstance(value, list) else [value]
        mapped = [roles[v] for v in values if isinstance(v, str) and v in roles]
        if not mapped:
            shown = str(value)[:_SHOWN_CHARS] if value is not None else "none"
            raise Forbidden(f"the token's {self.rules.role_claim} ({shown}) maps to no role "
                            "here (TOOMBOS_JWT_ROLES)")
        return max(mapped)


def claim(claims: Mapping[str, Any], name: str) -> Any:
    """A claim by name, or by a dotted path into nested objects (``app_metadata.role``).

    A name that is itself a claim wins: Auth0's namespaced claims are URLs with dots."""
    if name in claims:
        return claims[name]
    value: Any = claims
    for part in name.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value
