"""A small identity provider for the token tests: keys it makes, the JWKS it serves from
127.0.0.1 (a real aiohttp server), and the tokens it signs or forges."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
from dataclasses import dataclass, field
from typing import Any

import jwt
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

ISSUER = "https://project.idp.test/auth/v1"
AUDIENCE = "authenticated"
HS_SECRET = "a-shared-secret-of-forty-characters-0123"


@dataclass
class SigningKey:
    """A private key the provider signs with, and its public half as a JWK."""

    kid: str
    alg: str
    private: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey

    def jwk(self) -> dict[str, Any]:
        public = self.private.public_key()
        if isinstance(public, rsa.RSAPublicKey):
            body = RSAAlgorithm.to_jwk(public, as_dict=True)
        else:
            body = ECAlgorithm.to_jwk(public, as_dict=True)
        return {**body, "kid": self.kid, "alg": self.alg, "use": "sig"}

    def public_pem(self) -> bytes:
        return self.private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def rsa_key(kid: str) -> SigningKey:
    return SigningKey(kid, "RS256", rsa.generate_private_key(public_exponent=65537,
                                                             key_size=2048))


def ec_key(kid: str) -> SigningKey:
    return SigningKey(kid, "ES256", ec.generate_private_key(ec.SECP256R1()))


def claims(**overrides: Any) -> dict[str, Any]:
    """A valid set of claims for an operator called Ada; ``None`` drops a claim."""
    now = int(time.time())
    body = {"sub": "user-ada", "name": "Ada", "iss": ISSUER, "aud": AUDIENCE,
            "iat": now, "exp": now + 300, "role": "operator", **overrides}
    return {name: value for name, value in body.items() if value is not None}


def sign(key: SigningKey, **overrides: Any) -> str:
    return jwt.encode(claims(**overrides), key.private, algorithm=key.alg,
                      headers={"kid": key.kid})


def sign_hs(secret: str = HS_SECRET, **overrides: Any) -> str:
    return jwt.encode(claims(**overrides), secret, algorithm="HS256")


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def forge(header: dict[str, Any], body: dict[str, Any], hmac_key: bytes | None) -> str:
    """A token put together by hand: PyJWT refuses to make these (``none``, or HS256 with
    a public key as its secret), which is the point."""
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(body).encode())}"
    signature = b"" if hmac_key is None else hmac.new(
        hmac_key, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(signature)}"


@dataclass
class IdentityProvider:
    """Serves ``/jwks.json`` with the public keys of ``keys``; counts the fetches. With
    ``hold`` set, a fetch waits on it (a provider that hangs)."""

    keys: list[SigningKey]
    fetches: int = 0
    hold: asyncio.Event | None = None
    entered: asyncio.Event = field(default_factory=asyncio.Event)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/jwks.json", self._jwks)
        return app

    def document(self) -> dict[str, Any]:
        return {"keys": [key.jwk() for key in self.keys]}

    async def _jwks(self, request: web.Request) -> web.Response:
        self.fetches += 1
        self.entered.set()
        if self.hold is not None:
            await self.hold.wait()
        return web.json_response(self.document())
