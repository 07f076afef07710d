"""An identity provider's public signing keys (its JWKS), held in memory and fetched again
when they age or when a token names a key that is not held.

A fetch runs in a thread (urllib, as webhooks are posted) under a timeout, and one at a
time: requests that wait for a key share the fetch in flight. ``min_interval`` is a floor
between two fetches, whether they worked or not, so that tokens with made-up ``kid``
values cannot make the server hammer the provider: within the floor an unknown kid is
simply unknown.
"""

from __future__ import annotations

import asyncio
import logging
import time
import urllib.request
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

if TYPE_CHECKING:
    from jwt import PyJWK

log = logging.getLogger(__name__)

MAX_BYTES = 1 << 20  #: a JWKS is a few KiB: a larger answer is no JWKS
#: Algorithms a key of each type may verify when the key itself names none.
_BY_TYPE = {"RSA": ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512"), "OKP": ("EdDSA",)}
_BY_CURVE = {"P-256": "ES256", "P-384": "ES384", "P-521": "ES512"}

#: Reads a JWKS document from a source (URL or file) within a timeout; blocking.
Fetch = Callable[[str, float], bytes]
KeyId = tuple[str | None, str]  #: (kid, algorithm)


def is_url(source: str) -> bool:
    return source.startswith(("http://", "https://"))


def read_source(source: str, timeout: float) -> bytes:
    """The document at ``source``: an http(s) URL, else a file path."""
    if is_url(source):
        request = urllib.request.Request(source, headers={"Accept": "application/json"})  # noqa: S310
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(request, timeout=timeout) as response:
            body: bytes = response.read(MAX_BYTES + 1)
    else:
        with Path(source).open("rb") as handle:
            body = handle.read(MAX_BYTES + 1)
    if len(body) > MAX_BYTES:
        raise ValueError(f"larger than {MAX_BYTES} bytes")
    return body


def parse_keys(document: bytes, algorithms: Iterable[str]) -> dict[KeyId, PyJWK]:
    """The usable keys of a JWKS by (kid, algorithm). Symmetric (``oct``) keys, keys for
    encryption and keys no allowed algorithm can use are left out."""
    from jwt import PyJWK, PyJWTError  # loaded with the verifier: see verifier.load_pyjwt

    body = orjson.loads(document)
    if not isinstance(body, dict) or not isinstance(body.get("keys"), list):
        raise ValueError('not a JWKS: expected {"keys": [...]}')
    allowed = frozenset(algorithms)
    keys: dict[KeyId, PyJWK] = {}
    for jwk in body["keys"]:
        if not isinstance(jwk, dict) or jwk.get("kty") == "oct" or jwk.get("use", "sig") != "sig":
            continue
        kid = jwk.get("kid") if isinstance(jwk.get("kid"), str) else None
        for algorithm in _algorithms_of(jwk, allowed):
            try:
                keys[(kid, algorithm)] = PyJWK(jwk, algorithm)
            except (PyJWTError, ValueError, KeyError, TypeError):
                continue  # a malformed key, or one of another type than its alg says
    return keys


def _algorithms_of(jwk: dict[str, Any], allowed: frozenset[str]) -> list[str]:
    named = jwk.get("alg")
    if isinstance(named, str):
        return [named] if named in allowed else []
    if jwk.get("kty") == "EC":
        candidates: tuple[str | None, ...] = (_BY_CURVE.get(jwk.get("crv", "")),)
    else:
        candidates = _BY_TYPE.get(jwk.get("kty", ""), ())
    return [name for name in candidates if name in allowed]


class Jwks:
    """The keys of one JWKS source; ``clock`` is monotonic seconds."""

    def __init__(
        self, source: str, algorithms: Iterable[str], *, timeout: float, min_interval: float,
        max_age: float, fetch: Fetch = read_source, clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.source = source
        self._algorithms = tuple(algorithms)
        self._timeout, self.min_interval, self._max_age = timeout, min_interval, max_age
        self._fetch, self._clock = fetch, clock
        self._keys: dict[KeyId, PyJWK] = {}
        self._loaded_at: float | None = None  #: the last fetch that worked
        self._tried_at: float | None = None  #: the last fetch, whatever came of it
        self._inflight: asyncio.Task[None] | None = None
        self.fetches = self.failures = self.skipped = 0
        self.last_error: str | None = None  #: why the last fetch failed; None once one works

    def __repr__(self) -> str:
        return (f"<Jwks keys={len(self._keys)} fetches={self.fetches} "
                f"failures={self.failures} skipped={self.skipped}>")

    @property
    def held(self) -> int:
        """How many (kid, algorithm) keys are held."""
        return len(self._keys)

    @property
    def fetching(self) -> asyncio.Task[None] | None:
        """The fetch in flight, if any."""
        return self._inflight

    async def load(self) -> None:
        """The first fetch; raises what went wrong (the caller decides if that is fatal)."""
        self._tried_at = self._clock()
        await self._refresh(raise_errors=True)

    def key(self, kid: str | None, algorithm: str) -> PyJWK | None:
        """The key held for a token's ``kid`` and algorithm; an aged set is fetched again in
        the background meanwhile."""
        if self._loaded_at is not None and self._clock() - self._loaded_at > self._max_age:
            self._start_fetch()
        return self._lookup(kid, algorithm)

    async def find(self, kid: str | None, algorithm: str) -> PyJWK | None:
        """:meth:`key`, else the same after one fetch (shared, and only past the floor)."""
        key = self.key(kid, algorithm)
        if key is not None:
            return key
        task = self._inflight or self._start_fetch()
        if task is None:
            self.skipped += 1
            return None
        # Shielded: a client that hangs up must not cancel the fetch others wait for.
        await asyncio.shield(task)
        return self._lookup(kid, algorithm)

    async def close(self) -> None:
        task, self._inflight = self._inflight, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    def _lookup(self, kid: str | None, algorithm: str) -> PyJWK | None:
        key = self._keys.get((kid, algorithm))
        if key is None and kid is None:
            # A token without a kid: the provider's one key for its algorithm, if only one.
            matches = [held for (_, alg), held in self._keys.items() if alg == algorithm]
            key = matches[0] if len(matches) == 1 else None
        return key

    def _start_fetch(self) -> asyncio.Task[None] | None:
        """A fetch in the background, unless one runs or the last was within the floor."""
        now = self._clock()
        if self._inflight is not None or (
            self._tried_at is not None and now - self._tried_at < self.min_interval
        ):
            return self._inflight
        self._tried_at = now
        self._inflight = asyncio.create_task(self._refresh(), name="jwks-fetch")
        self._inflight.add_done_callback(self._fetched)
        return self._inflight

    def _fetched(self, task: asyncio.Task[None]) -> None:
        if self._inflight is task:
            self._inflight = None

    async def _refresh(self, *, raise_errors: bool = False) -> None:
        self.fetches += 1
        try:
            async with asyncio.timeout(self._timeout + 1):  # urllib's own timeout is per read
                document = await asyncio.to_thread(self._fetch, self.source, self._timeout)
            keys = parse_keys(document, self._algorithms)
        except (OSError, ValueError, TimeoutError) as exc:
            self.failures += 1
            self.last_error = str(exc) or type(exc).__name__
            if raise_errors:
                raise
            log.warning("fetching the JWKS failed; the keys held stay in use",
                        extra={"source": self.source, "error": self.last_error})
            return
        self.last_error = None
        if not keys:
            # More likely a broken answer than a provider that dropped every key: the keys
            # held stay (a provider rotates by adding a key, then removing the old one).
            log.warning("the JWKS holds no key for the accepted algorithms",
                        extra={"source": self.source, "algorithms": list(self._algorithms)})
            if self._keys:
                return
        self._keys, self._loaded_at = keys, self._clock()
