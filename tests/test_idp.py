"""Identity-provider tokens beside API keys, through the real app: a JWKS served from
127.0.0.1 by a real aiohttp server, tokens signed with keys made here (RSA, EC, HMAC)."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from conftest import auth, finished, settings_for
from idp_support import (
    AUDIENCE,
    HS_SECRET,
    ISSUER,
    IdentityProvider,
    SigningKey,
    claims,
    ec_key,
    forge,
    rsa_key,
    sign,
    sign_hs,
)
from ws_support import Client, ClientFactory, admin_secret, next_json, upgrade

from toombos_edge.appkeys import ACTIVITY, IDP, SETTINGS
from toombos_edge.errors import SettingsError
from toombos_edge.idp import TokenVerifier
from toombos_edge.settings import Settings

ServerFactory = Callable[[web.Application], Awaitable[TestServer]]
Start = Callable[..., Awaitable[Client]]


@pytest.fixture(scope="module")
def k1() -> SigningKey:
    return rsa_key("k1")


@pytest.fixture
async def provider(aiohttp_server: ServerFactory, k1: SigningKey) -> tuple[IdentityProvider, str]:
    idp = IdentityProvider([k1])
    server = await aiohttp_server(idp.app())
    return idp, str(server.make_url("/jwks.json"))


@pytest.fixture
def start_app(make_client: ClientFactory,
              provider: tuple[IdentityProvider, str]) -> Start:
    """The app with tokens from ``provider`` on, and any other settings given."""

    async def make(**overrides: Any) -> Client:
        values = {"jwt_jwks": provider[1], "jwt_issuer": ISSUER, "jwt_audience": AUDIENCE,
                  **overrides}
        return await make_client(**values)

    return make


@pytest.fixture
async def client(start_app: Start) -> Client:
    return await start_app()


async def whoami(client: Client, token: str) -> tuple[int, dict[str, Any]]:
    response = await client.get("/api/auth/whoami", headers=auth(token))
    assert response.content_type == "application/json"
    return response.status, await response.json()


async def test_a_valid_token_is_let_in_as_its_subject(client: Client, k1: SigningKey) -> None:
    status, body = await whoami(client, sign(k1))
    assert status == 200, body
    assert body == {"id": "user-ada", "name": "Ada", "role": "operator"}


def _bad_tokens(k1: SigningKey) -> dict[str, tuple[str, str]]:
    """Each bad token, with the reason the server must give."""
    now = int(time.time())
    stranger = rsa_key("k1")  # another key pair that claims to be k1
    return {
        "expired": (sign(k1, iat=now - 600, exp=now - 120), "the token has expired"),
        "wrong audience": (sign(k1, aud="another-api"), "the token is for another audience"),
        "wrong issuer": (sign(k1, iss="https://evil.test/auth/v1"),
                         "the token is from another issuer"),
        "alg none": (forge({"alg": "none", "typ": "JWT", "kid": "k1"}, claims(), None),
                     "the token's algorithm is not accepted (accepted: RS256, ES256)"),
        "HS256 keyed with the RSA public key": (
            forge({"alg": "HS256", "typ": "JWT", "kid": "k1"}, claims(), k1.public_pem()),
            "the token's algorithm is not accepted (accepted: RS256, ES256)"),
        "signed by another key": (sign(stranger), "the token's signature does not verify"),
        "no exp": (sign(k1, exp=None), "the token has no 'exp' claim"),
        "not a JWT at all": ("a.b.c", "the token is malformed"),
    }


async def test_only_the_valid_token_is_let_in(client: Client, k1: SigningKey) -> None:
    for case, (token, reason) in _bad_tokens(k1).items():
        response = await client.get("/api/jobs", headers=auth(token))
        body = await response.json()
        assert response.status == 401, case
        assert response.headers["WWW-Authenticate"] == "Bearer"
        assert body["detail"] == reason, case
        assert body["error"]["code"] == "unauthorized"
    assert (await client.get("/api/jobs", headers=auth(sign(k1)))).status == 200


async def test_the_role_claim_decides_what_a_token_may_do(client: Client, k1: SigningKey) -> None:
    viewer, admin = sign(k1, role="viewer"), sign(k1, role="admin")
    assert (await client.get("/api/jobs", headers=auth(viewer))).status == 200
    refused = await client.post("/api/jobs", json={"kind": "generate"}, headers=auth(viewer))
    assert refused.status == 403
    assert (await refused.json())["detail"] == (
        "this needs the operator role; the token has viewer")
    assert (await client.get("/admin/keys", headers=auth(sign(k1)))).status == 403
    assert (await client.get("/admin/keys", headers=auth(admin))).status == 200
    for role in ("anon", None):
        status, body = await whoami(client, sign(k1, role=role))
        assert status == 403
        assert body["detail"].endswith("maps to no role here (TOOMBOS_JWT_ROLES)")


async def test_a_nested_claim_and_a_list_of_roles_map_to_the_highest(
    start_app: Start, k1: SigningKey
) -> None:
    client = await start_app(jwt_role_claim="app_metadata.roles",
                             jwt_roles="member=viewer,editor=operator,owner=admin",
                             jwt_name_claim="email")
    token = sign(k1, app_metadata={"roles": ["member", "editor"]}, email="ada@example.test")
    assert await whoami(client, token) == (
        200, {"id": "user-ada", "name": "ada@example.test", "role": "operator"})


async def test_a_namespaced_claim_with_dots_is_read_whole(start_app: Start,
                                                          k1: SigningKey) -> None:
    client = await start_app(jwt_role_claim="https://app.example.test/role")
    token = sign(k1, **{"https://app.example.test/role": "admin"})
    assert (await whoami(client, token))[1]["role"] == "admin"


async def test_api_keys_keep_working_alongside(client: Client, k1: SigningKey) -> None:
    assert (await client.get("/admin/keys", headers=auth(admin_secret(client)))).status == 200
    refused = await client.get("/api/jobs", headers=auth("tbe_not-a-key"))
    assert refused.status == 401
    assert (await refused.json())["detail"] == "invalid or revoked API key"
    assert (await client.get("/api/jobs", headers=auth(sign(k1)))).status == 200


async def test_tokens_are_off_by_default(make_client: ClientFactory,
                                         k1: SigningKey) -> None:
    client = await make_client()
    assert client.app.get(IDP) is None
    refused = await client.get("/api/jobs", headers=auth(sign(k1)))
    assert refused.status == 401
    assert (await refused.json())["detail"] == "invalid or revoked API key"


async def test_an_unknown_kid_fetches_the_keys_once_after_a_rotation(
    start_app: Start, provider: tuple[IdentityProvider, str], k1: SigningKey
) -> None:
    idp, _url = provider
    client = await start_app(jwt_jwks_min_interval="0")
    assert idp.fetches == 1  # at start
    k2 = ec_key("k2")  # the provider rotates to a new (EC) key
    idp.keys.append(k2)
    assert (await whoami(client, sign(k2)))[0] == 200
    assert idp.fetches == 2
    assert (await whoami(client, sign(k2, sub="user-bob")))[0] == 200
    assert (await whoami(client, sign(k1)))[0] == 200
    assert idp.fetches == 2  # both keys held now


async def test_a_flood_of_unknown_kids_does_not_reach_the_provider(
    start_app: Start, provider: tuple[IdentityProvider, str]
) -> None:
    idp, _url = provider
    client = await start_app(jwt_jwks_min_interval="3600")
    stranger = rsa_key("x")
    tokens = [sign(SigningKey(f"kid-{n}", "RS256", stranger.private)) for n in range(30)]
    answers = await asyncio.gather(*(whoami(client, token) for token in tokens))
    assert {status for status, _ in answers} == {401}
    assert answers[0][1]["detail"] == "the token's signing key is not one of the provider's keys"
    assert idp.fetches == 1  # the start's fetch only: the floor holds the rest
    assert client.app[IDP].jwks is not None and client.app[IDP].jwks.skipped == 30


async def test_a_hanging_provider_times_out_and_the_server_goes_on(
    start_app: Start, provider: tuple[IdentityProvider, str]
) -> None:
    idp, _url = provider
    client = await start_app(jwt_jwks_min_interval="0", jwt_jwks_timeout="0.2")
    idp.hold, idp.entered = asyncio.Event(), asyncio.Event()
    try:
        pending = asyncio.ensure_future(whoami(client, sign(rsa_key("k9"))))
        await asyncio.wait_for(idp.entered.wait(), 10)
        health = await client.get("/health")  # the loop serves while the fetch hangs
        assert health.status == 200 and not pending.done()
        status, body = await asyncio.wait_for(pending, 10)
    finally:
        idp.hold.set()
    assert status == 401
    assert body["detail"] == "the token's signing key is not one of the provider's keys"
    assert client.app[IDP].jwks is not None and client.app[IDP].jwks.failures == 1


async def test_a_jwks_file_works_as_a_url_does(make_client: ClientFactory, tmp_path: Path,
                                               k1: SigningKey) -> None:
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps(IdentityProvider([k1]).document()))
    client = await make_client(jwt_jwks=str(path), jwt_issuer=ISSUER, jwt_audience=AUDIENCE)
    assert (await whoami(client, sign(k1)))[0] == 200


@pytest.mark.parametrize("content", [None, "{not json", '{"keys": "none"}'])
async def test_a_jwks_file_that_does_not_load_stops_the_start(tmp_path: Path,
                                                              content: str | None) -> None:
    path = tmp_path / "jwks.json"
    if content is not None:
        path.write_text(content)
    settings = settings_for(tmp_path, jwt_jwks=str(path), jwt_issuer=ISSUER,
                            jwt_audience=AUDIENCE)
    verifier = TokenVerifier.from_settings(settings)
    assert verifier is not None
    with pytest.raises(SettingsError, match=r"TOOMBOS_JWT_JWKS: .*jwks\.json is no usable JWKS"):
        await verifier.start()


async def test_an_hs256_secret_accepts_its_tokens_only(
    make_client: ClientFactory, k1: SigningKey
) -> None:
    client = await make_client(jwt_secret=HS_SECRET, jwt_issuer=ISSUER, jwt_audience=AUDIENCE)
    assert (await whoami(client, sign_hs()))[0] == 200
    forged = await whoami(client, sign_hs(secret="another-secret-of-forty-characters-98765"))
    assert forged == (401, forged[1]) and forged[1]["detail"] == (
        "the token's signature does not verify")
    rs = await whoami(client, sign(k1))
    assert rs[0] == 401 and rs[1]["detail"] == (
        "the token's algorithm is not accepted (accepted: HS256)")


async def test_the_activity_log_names_the_subject_never_the_token(
    client: Client, k1: SigningKey, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    token = sign(k1)
    response = await client.post("/api/ingest", json={"title": "Notes", "text": "pears"},
                                 headers=auth(token))
    assert response.status == 202
    await finished(client, (await response.json())["job_id"])
    assert (await client.get("/admin/keys", headers=auth(token))).status == 403
    await client.app[ACTIVITY].flush()
    text = client.app[SETTINGS].activity_path.read_text()
    lines = [json.loads(line) for line in text.splitlines()]
    by_type = {line["type"]: line for line in lines}
    assert by_type["ingestion.accepted"]["actor"] == {"id": "user-ada", "name": "Ada"}
    assert by_type["auth.refused"]["actor"] == {"id": "user-ada", "name": "Ada"}
    signature = token.rsplit(".", 1)[1]
    assert signature not in text and signature not in caplog.text


async def test_a_websocket_takes_a_token_in_the_query_or_the_header(
    client: Client, k1: SigningKey
) -> None:
    async with client.ws_connect(f"/ws/dashboard?token={sign(k1)}") as ws:
        ack = await next_json(ws)
        assert (ack["type"], ack["data"]["role"], ack["data"]["read_only"]) == (
            "connection_ack", "operator", False)
    async with client.ws_connect("/ws/dashboard", headers=auth(sign(k1, role="viewer"))) as ws:
        assert (await next_json(ws))["data"]["role"] == "viewer"
    now = int(time.time())
    expired = sign(k1, iat=now - 600, exp=now - 120)
    refused = await client.get(f"/ws/dashboard?token={expired}", headers=upgrade())
    assert refused.status == 401
    assert (await refused.json())["detail"] == "the token has expired"


async def test_a_ws_token_asked_for_with_a_token_opens_sockets_until_that_expires(
    client: Client, k1: SigningKey
) -> None:
    exp = int(time.time()) + 20  # sooner than TOOMBOS_WS_TOKEN_TTL (60 s)
    response = await client.post("/api/auth/ws-token", headers=auth(sign(k1, exp=exp)))
    body = await response.json()
    assert response.status == 200, body
    assert body["expires_at"] == time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(exp))
    assert 0 < body["expires_in"] <= 20
    async with client.ws_connect(f"/ws/dashboard?token={body['token']}") as ws:
        assert (await next_json(ws))["data"]["role"] == "operator"


@pytest.mark.parametrize(("overrides", "message"), [
    ({"jwt_secret": HS_SECRET, "jwt_jwks": "https://idp.test/jwks.json"},
     "TOOMBOS_JWT_SECRET and TOOMBOS_JWT_JWKS: give one, not both"),
    ({"jwt_secret": "short"}, "TOOMBOS_JWT_SECRET: expected at least 32 characters"),
    ({"jwt_jwks": "https://idp.test/jwks.json", "jwt_algorithms": "RS256,HS256"},
     "TOOMBOS_JWT_ALGORITHMS: HS256 cannot be used with TOOMBOS_JWT_JWKS"),
    ({"jwt_secret": HS_SECRET, "jwt_algorithms": "RS256"},
     "TOOMBOS_JWT_ALGORITHMS: RS256 cannot be used with TOOMBOS_JWT_SECRET"),
    ({"jwt_secret": HS_SECRET, "jwt_algorithms": "none"},
     "--jwt-algorithms: expected comma-separated algorithms"),
    ({"jwt_secret": HS_SECRET, "jwt_issuer": ""},
     "TOOMBOS_JWT_ISSUER: required when tokens are on"),
    ({"jwt_secret": HS_SECRET, "jwt_audience": ""},
     "TOOMBOS_JWT_AUDIENCE: required when tokens are on"),
    ({"jwt_secret": HS_SECRET, "jwt_roles": "authenticated=superuser"},
     "--jwt-roles: expected comma-separated value=role pairs"),
])
def test_token_settings_that_do_not_fit_stop_the_start(
    tmp_path: Path, overrides: dict[str, str], message: str
) -> None:
    values = {"jwt_issuer": ISSUER, "jwt_audience": AUDIENCE, **overrides}
    with pytest.raises(SettingsError) as refused:
        settings_for(tmp_path, **values)
    assert str(refused.value).startswith(message)


def test_the_secret_is_never_shown(tmp_path: Path) -> None:
    settings = settings_for(tmp_path, jwt_secret=HS_SECRET, jwt_issuer=ISSUER,
                            jwt_audience=AUDIENCE)
    assert settings.public()["jwt_secret"] == "***"
    assert HS_SECRET not in repr(settings)
    verifier = TokenVerifier.from_settings(settings)
    assert HS_SECRET not in repr(verifier)
    assert TokenVerifier.from_settings(Settings()) is None


async def test_an_unreachable_provider_does_not_stop_the_start_and_health_says_so(
    start_app: Start, k1: SigningKey
) -> None:
    client = await start_app(jwt_jwks="http://127.0.0.1:9/jwks.json", jwt_jwks_timeout="1")
    response = await client.get("/api/jobs", headers=auth(sign(k1)))
    assert response.status == 503  # no keys yet: the server's trouble, not the token's
    assert response.headers["Retry-After"] == "30"  # the floor keeps it from trying at once
    assert (await response.json())["detail"] == (
        "the identity provider's signing keys could not be fetched; try again later")
    health = await client.get("/health/detailed", headers=auth(admin_secret(client)))
    check = (await health.json())["components"]["identity_provider"]
    assert check["status"] == "warn"
    assert check["message"].startswith("signing keys from http://127.0.0.1:9/jwks.json: ")
    assert (await client.get("/api/jobs", headers=auth(admin_secret(client)))).status == 200


async def test_health_shows_the_keys_held(client: Client) -> None:
    health = await client.get("/health/detailed", headers=auth(admin_secret(client)))
    check = (await health.json())["components"]["identity_provider"]
    assert check["status"] == "pass" and check["message"] == "signing keys held: 1"


async def test_a_token_spends_from_its_subjects_bucket_and_a_bad_one_counts_as_a_failure(
    start_app: Start, k1: SigningKey
) -> None:
    client = await start_app(rate_limit_operator=2, rate_limit_failed_auth=2)
    token = sign(k1)
    assert [(await whoami(client, token))[0] for _ in range(2)] == [200, 200]
    status, body = await whoami(client, sign(k1))  # a new token of the same subject
    assert status == 429 and body["error"]["details"]["policy"] == "operator"
    other = await start_app(rate_limit_failed_auth=2)
    expired = _bad_tokens(k1)["expired"][0]
    assert [(await whoami(other, expired))[0] for _ in range(2)] == [401, 401]
    status, body = await whoami(other, token)  # the address is out of failures
    assert status == 429 and body["error"]["details"]["policy"] == "failed-auth"
