"""The JWKS cache: which keys it keeps, when it fetches again, and that it never hammers
the provider; against a real JWKS served from 127.0.0.1, with a clock the tests move."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from idp_support import IdentityProvider, SigningKey, ec_key, rsa_key

from toombos_edge.idp.jwks import Jwks, parse_keys

ServerFactory = Callable[[web.Application], Awaitable[TestServer]]
ALGORITHMS = ("RS256", "ES256")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def k1() -> SigningKey:
    return rsa_key("k1")


@pytest.fixture
async def provider(aiohttp_server: ServerFactory, k1: SigningKey) -> tuple[IdentityProvider, str]:
    idp = IdentityProvider([k1])
    server = await aiohttp_server(idp.app())
    return idp, str(server.make_url("/jwks.json"))


def jwks(url: str, clock: Clock, **options: float) -> Jwks:
    values = {"timeout": 5.0, "min_interval": 30.0, "max_age": 3600.0, **options}
    return Jwks(url, ALGORITHMS, clock=clock, **values)


async def test_unknown_kids_fetch_at_most_once_per_interval(
    provider: tuple[IdentityProvider, str]
) -> None:
    idp, url = provider
    clock = Clock()
    keys = jwks(url, clock)
    await keys.load()
    assert await keys.find("k1", "RS256") is not None and idp.fetches == 1
    clock.now += 10  # within the floor: an unknown kid is simply unknown
    assert await keys.find("nope", "RS256") is None
    assert (idp.fetches, keys.skipped) == (1, 1)
    clock.now += 21  # past it: one fetch
    assert await keys.find("nope", "RS256") is None
    assert idp.fetches == 2
    for _ in range(50):
        assert await keys.find("nope-again", "RS256") is None
    assert (idp.fetches, keys.skipped) == (2, 51)


async def test_waiting_requests_share_one_fetch(provider: tuple[IdentityProvider, str]) -> None:
    idp, url = provider
    keys = jwks(url, Clock(), min_interval=0)
    await keys.load()
    k2 = ec_key("k2")
    idp.keys.append(k2)
    idp.hold, idp.entered = asyncio.Event(), asyncio.Event()
    finds = asyncio.gather(*(keys.find("k2", "ES256") for _ in range(20)))
    await asyncio.wait_for(idp.entered.wait(), 10)
    idp.hold.set()
    found = await asyncio.wait_for(finds, 10)
    assert all(key is not None and key.key_id == "k2" for key in found)
    assert idp.fetches == 2


async def test_aged_keys_are_fetched_again_in_the_background(
    provider: tuple[IdentityProvider, str], k1: SigningKey
) -> None:
    idp, url = provider
    clock = Clock()
    keys = jwks(url, clock, max_age=60)
    await keys.load()
    idp.keys = [ec_key("k2")]  # the provider rotated k1 out
    clock.now += 61
    assert keys.key("k1", "RS256") is not None  # answered at once, with the keys held
    fetch = keys.fetching
    assert fetch is not None
    await fetch
    assert idp.fetches == 2
    assert keys.key("k1", "RS256") is None and keys.key("k2", "ES256") is not None


async def test_a_failed_or_empty_answer_keeps_the_keys_held(
    aiohttp_server: ServerFactory, k1: SigningKey
) -> None:
    answers = [json.dumps({"keys": [k1.jwk()]}), "{broken", json.dumps({"keys": []}),
               "x" * (1 << 21)]

    async def serve(request: web.Request) -> web.Response:
        return web.Response(text=answers.pop(0), content_type="application/json")

    app = web.Application()
    app.router.add_get("/jwks.json", serve)
    server = await aiohttp_server(app)
    keys = jwks(str(server.make_url("/jwks.json")), Clock(), min_interval=0)
    await keys.load()
    for _ in range(3):
        assert await keys.find("other", "RS256") is None
        assert keys.key("k1", "RS256") is not None
    assert keys.failures == 2  # the broken one and the oversized one; the empty one is no error


async def test_an_unreachable_provider_fails_the_load_and_is_counted() -> None:
    keys = jwks("http://127.0.0.1:9/jwks.json", Clock(), timeout=1)
    with pytest.raises(OSError):
        await keys.load()
    assert (keys.fetches, keys.failures) == (1, 1)


def test_only_signing_keys_for_accepted_algorithms_are_kept(k1: SigningKey) -> None:
    ec = ec_key("e1")
    bare_rsa = {name: value for name, value in k1.jwk().items() if name != "alg"}
    document = {"keys": [
        {"kty": "oct", "kid": "shared", "k": "c2VjcmV0", "alg": "HS256"},  # symmetric: never
        {**k1.jwk(), "kid": "enc", "use": "enc"},  # for encryption
        {**bare_rsa, "kid": "bare"},  # no alg: every accepted RSA algorithm
        {**ec.jwk(), "alg": "RS256", "kid": "liar"},  # an EC key that says it is RSA
        {**k1.jwk(), "alg": "RS512", "kid": "rs512"},  # an algorithm not accepted
        ec.jwk(),
        "not a key",
    ]}
    keys = parse_keys(json.dumps(document).encode(), ("RS256", "PS256", "ES256", "HS256"))
    assert sorted(keys) == [("bare", "PS256"), ("bare", "RS256"), ("e1", "ES256")]


@pytest.mark.parametrize("document", [b"[]", b'{"keys": {}}', b"null"])
def test_a_document_that_is_no_jwks_is_refused(document: bytes) -> None:
    with pytest.raises(ValueError, match="not a JWKS"):
        parse_keys(document, ALGORITHMS)
