"""Rate limits through the real app: per key by role, per address without a key, failed
authentications, probes left alone, the 429's headers, metrics, activity, a bounded table.

Time is driven through the limiter's injectable clock (``LIMITER.clock``), never slept.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Any

import orjson
import pytest
from aiohttp import ClientResponse
from conftest import Client, ClientFactory, auth
from prometheus_client.parser import text_string_to_metric_families

from toombos_edge.appkeys import ACTIVITY, DATABASE, KEYS, LIMITER
from toombos_edge.keys import Role

WHOAMI = "/api/auth/whoami"
PROBES = ("/health", "/ready", "/live", "/liveness", "/startup")


class Clock:
    """The limiter's clock, moved on by the test."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def make_clocked(make_client: ClientFactory) -> Callable[..., Any]:
    """The real app with the given settings, its limiter on a test clock."""

    async def make(**overrides: Any) -> tuple[Client, Clock]:
        client: Client = await make_client(trusted_proxies="127.0.0.1", **overrides)
        clock = Clock()
        client.app[LIMITER].clock = clock
        return client, clock

    return make


async def key_of(client: Client, role: str) -> str:
    _key, secret = await client.app[KEYS].create(f"test {role}", Role[role])
    return secret


def source(ip: str) -> dict[str, str]:
    """A client at ``ip``, as the trusted proxy (127.0.0.1, the test client) says."""
    return {"X-Forwarded-For": ip}


async def statuses(client: Client, count: int, path: str = WHOAMI, **headers: str) -> list[int]:
    found = []
    for _ in range(count):
        async with client.get(path, headers=headers) as response:
            found.append(response.status)
    return found


async def refusal(response: ClientResponse) -> dict[str, Any]:
    """The 429's JSON error, checked to be the one error shape."""
    assert response.status == 429, await response.text()
    body: dict[str, Any] = await response.json()
    assert body["error"]["code"] == "too_many_requests"
    assert body["error"]["status"] == 429 and body["detail"] == body["error"]["message"]
    return body


async def test_a_key_over_its_roles_limit_gets_429_then_recovers(
    make_clocked: Callable[..., Any],
) -> None:
    client, clock = await make_clocked(rate_limit_viewer=5, rate_limit_operator=8)
    viewer, other, operator = (await key_of(client, "viewer"), await key_of(client, "viewer"),
                               await key_of(client, "operator"))
    assert await statuses(client, 5, **auth(viewer)) == [200] * 5
    response = await client.get(WHOAMI, headers=auth(viewer))
    body = await refusal(response)
    # 5 per 60 s: a token comes back every 12 s, none has yet.
    assert response.headers["Retry-After"] == "12"
    assert response.headers["RateLimit-Policy"] == '"viewer";q=5;w=60'
    assert response.headers["RateLimit"] == '"viewer";r=0;t=12'
    assert body["error"]["details"] == {"policy": "viewer", "scope": "key", "quota": 5,
                                        "window": 60, "retry_after": 12}
    assert "X-Correlation-ID" in response.headers
    # Per key and per role: another viewer key, and an operator's larger quota, are untouched.
    assert await statuses(client, 5, **auth(other)) == [200] * 5
    assert await statuses(client, 9, **auth(operator)) == [200] * 8 + [429]

    clock.now += 11.5
    response = await client.get(WHOAMI, headers=auth(viewer))
    await refusal(response)
    assert response.headers["Retry-After"] == "1"  # 0.5 s, rounded up: never too early
    clock.now += 0.5
    assert await statuses(client, 2, **auth(viewer)) == [200, 429]  # exactly one came back
    clock.now += 60
    assert await statuses(client, 6, **auth(viewer)) == [200] * 5 + [429]  # all of them


async def test_a_client_at_the_policys_rate_is_never_refused(
    make_clocked: Callable[..., Any],
) -> None:
    """A bucket refills evenly: once its burst is spent, one request per window/quota
    always passes, and a faster one never does; idle time refills no more than the quota."""
    client, clock = await make_clocked(rate_limit_operator=4)  # a token every 15 s
    operator = await key_of(client, "operator")
    assert await statuses(client, 4, **auth(operator)) == [200] * 4
    for _ in range(20):  # (steps that floats hold exactly)
        clock.now += 14.5
        assert await statuses(client, 1, **auth(operator)) == [429]  # a little early
        clock.now += 0.5
        assert await statuses(client, 2, **auth(operator)) == [200, 429]  # on the beat
    clock.now += 3600
    assert await statuses(client, 5, **auth(operator)) == [200] * 4 + [429]


async def test_a_dashboard_of_another_origin_may_read_when_to_retry(
    make_clocked: Callable[..., Any],
) -> None:
    client, _clock = await make_clocked(rate_limit_viewer=1)
    viewer = await key_of(client, "viewer")
    origin = {"Origin": "http://localhost:3000", **auth(viewer)}
    assert (await client.get(WHOAMI, headers=origin)).status == 200
    response = await client.get(WHOAMI, headers=origin)
    await refusal(response)
    assert response.headers["Access-Control-Allow-Origin"] == "http://localhost:3000"
    exposed = {name.strip() for name in
               response.headers["Access-Control-Expose-Headers"].split(",")}
    assert {"Retry-After", "RateLimit", "RateLimit-Policy"} <= exposed


async def test_a_key_refused_for_its_role_still_counts(make_clocked: Callable[..., Any]) -> None:
    client, _clock = await make_clocked(rate_limit_viewer=2)
    viewer = await key_of(client, "viewer")
    assert await statuses(client, 3, "/admin/keys", **auth(viewer)) == [403, 403, 429]


async def test_failed_authentications_are_throttled_per_ip_more_tightly(
    make_clocked: Callable[..., Any],
) -> None:
    client, clock = await make_clocked(rate_limit_failed_auth=3, rate_limit_anonymous=10)
    good = await key_of(client, "viewer")
    wrong = {**auth("tbe_not-a-key"), **source("203.0.113.7")}
    assert await statuses(client, 3, **wrong) == [401] * 3
    response = await client.get(WHOAMI, headers=wrong)
    body = await refusal(response)
    assert body["error"]["details"]["policy"] == "failed-auth"
    assert response.headers["RateLimit-Policy"] == '"failed-auth";q=3;w=60'
    assert response.headers["Retry-After"] == "20"
    # Until a failure comes back, that address's keys are not even looked at: a right one
    # is refused too, so guessing goes no faster than the limit.
    assert await statuses(client, 1, **auth(good), **source("203.0.113.7")) == [429]
    assert await statuses(client, 1, **auth(good), **source("203.0.113.8")) == [200]
    # Without a key, an address has the anonymous quota: larger than the failures'.
    assert await statuses(client, 11, **source("198.51.100.1")) == [401] * 10 + [429]
    clock.now += 20
    assert await statuses(client, 2, **auth(good), **source("203.0.113.7")) == [200, 200]
    assert await statuses(client, 2, **wrong) == [401, 429]


async def test_anonymous_requests_are_limited_per_address_and_ipv6_per_64(
    make_clocked: Callable[..., Any],
) -> None:
    client, _clock = await make_clocked(rate_limit_anonymous=3)
    for path in ("/openapi.json", "/docs", "/no/such/path"):
        assert (await client.get(path, headers=source("192.0.2.1"))).status != 429
    response = await client.get("/openapi.json", headers=source("192.0.2.1"))
    await refusal(response)
    assert response.headers["RateLimit-Policy"] == '"anonymous";q=3;w=60'
    assert (await client.get("/openapi.json", headers=source("192.0.2.2"))).status == 200
    # One host holds a whole IPv6 /64: its addresses share one bucket.
    for host in ("2001:db8:1:2::1", "2001:db8:1:2::2", "2001:db8:1:2:ffff::3"):
        assert (await client.get("/openapi.json", headers=source(host))).status == 200
    assert (await client.get("/openapi.json", headers=source("2001:db8:1:2::9"))).status == 429
    assert (await client.get("/openapi.json", headers=source("2001:db8:1:3::1"))).status == 200
    # An IPv4 client of a dual-stack socket is its IPv4 address, not one /64 for all of them.
    assert (await client.get("/openapi.json", headers=source("::ffff:192.0.2.2"))).status == 200
    assert (await client.get("/openapi.json", headers=source("192.0.2.2"))).status == 200
    assert (await client.get("/openapi.json", headers=source("::ffff:192.0.2.2"))).status == 429
    assert (await client.get("/openapi.json", headers=source("::ffff:192.0.2.3"))).status == 200


async def test_a_spoofed_forwarded_for_buys_nothing(
    make_client: ClientFactory
) -> None:
    """Without trusted proxies, X-Forwarded-For is the client's own text: ignored."""
    client: Client = await make_client(rate_limit_anonymous=2)
    found = [(await client.get("/openapi.json", headers=source(f"10.0.0.{n}"))).status
             for n in range(3)]
    assert found == [200, 200, 429]


async def test_probes_are_never_limited(make_clocked: Callable[..., Any]) -> None:
    client, _clock = await make_clocked(rate_limit_anonymous=1, rate_limit_failed_auth=1,
                                       metrics_public="true")
    # The test client's address has used its one failure and its one request without a key.
    assert await statuses(client, 2, **auth("tbe_wrong")) == [401, 429]
    assert await statuses(client, 2, "/openapi.json") == [200, 429]
    for path in (*PROBES, "/metrics"):
        found = await statuses(client, 30, path)
        assert 429 not in found and found[0] in (200, 503), (path, found)


async def test_metrics_count_refusals_and_buckets(make_clocked: Callable[..., Any]) -> None:
    client, _clock = await make_clocked(rate_limit_viewer=1, rate_limit_failed_auth=1,
                                       metrics_public="true")
    viewer = await key_of(client, "viewer")
    assert await statuses(client, 4, **auth(viewer)) == [200, 429, 429, 429]
    assert await statuses(client, 3, **auth("tbe_wrong"), **source("192.0.2.9")) == [
        401, 429, 429]
    text = await (await client.get("/metrics", headers={"Accept": "*/*"})).text()
    found = {(s.name, tuple(sorted(s.labels.items()))): s.value
             for family in text_string_to_metric_families(text) for s in family.samples}
    assert found[("toombos_rate_limited_total", (("policy", "viewer"), ("scope", "key")))] == 3
    assert found[("toombos_rate_limited_total",
                  (("policy", "failed-auth"), ("scope", "failed_auth")))] == 2
    assert found[("toombos_rate_limit_buckets", (("scope", "key"),))] == 1
    assert found[("toombos_rate_limit_buckets", (("scope", "failed_auth"),))] == 1
    assert found[("toombos_rate_limit_evicted_total", (("scope", "ip"),))] == 0


def activity(client: Client, type_: str) -> list[dict[str, Any]]:
    with sqlite3.connect(client.app[DATABASE].path) as conn:
        rows = conn.execute("SELECT line FROM activity WHERE type = ? ORDER BY id", (type_,))
        return [orjson.loads(line) for (line,) in rows]


async def test_refusals_are_in_the_activity_log_once_in_a_row(
    make_clocked: Callable[..., Any],
) -> None:
    client, clock = await make_clocked(rate_limit_viewer=2)
    viewer = await key_of(client, "viewer")
    key_id = client.app[KEYS].authenticate(viewer).id  # type: ignore[union-attr]
    assert await statuses(client, 5, **auth(viewer)) == [200, 200, 429, 429, 429]
    clock.now += 30  # one token back: let in, then refused again (a second line)
    assert await statuses(client, 3, **auth(viewer)) == [200, 429, 429]
    await client.app[ACTIVITY].flush()
    lines = activity(client, "rate.limited")
    assert len(lines) == 2
    line = lines[0]
    assert line["actor"]["id"] == key_id and line["outcome"] == "refused"
    assert line["data"] == {"status": 429, "method": "GET", "route": WHOAMI,
                            "endpoint": WHOAMI, "message": line["data"]["message"],
                            "policy": "viewer", "scope": "key", "quota": 2, "window": 60,
                            "retry_after": 30}
    assert viewer not in orjson.dumps(lines).decode()


async def test_the_tables_stay_bounded_under_a_flood_of_addresses(
    make_clocked: Callable[..., Any],
) -> None:
    client, clock = await make_clocked(rate_limit_anonymous=2, rate_limit_max_buckets=100)
    limiter = client.app[LIMITER]
    assert await statuses(client, 3, "/openapi.json", **source("192.0.2.200")) == [
        200, 200, 429]
    for n in range(1000):
        ip = f"10.{n // 250}.{n % 250}.1"
        assert (await client.get("/openapi.json", headers=source(ip))).status == 200
        assert len(limiter.addresses.table) <= 100
        if n % 20 == 0:  # the abuser goes on all along: still refused, never forgotten
            response = await client.get("/openapi.json", headers=source("192.0.2.200"))
            assert response.status == 429
    assert limiter.addresses.evicted >= 900
    clock.now += 60  # a window later every bucket is full again: all forgotten
    assert limiter.expire() > 0
    assert limiter.addresses.table == {} and limiter.addresses.refusing == set()


async def test_limits_off_or_zero_refuse_nothing(make_clocked: Callable[..., Any]) -> None:
    client, _clock = await make_clocked(rate_limit="false", rate_limit_viewer=1,
                                       rate_limit_anonymous=1)
    viewer = await key_of(client, "viewer")
    assert 429 not in await statuses(client, 20, **auth(viewer))
    assert 429 not in await statuses(client, 20, "/openapi.json")


async def test_a_quota_of_zero_is_no_limit(make_clocked: Callable[..., Any]) -> None:
    client, _clock = await make_clocked(rate_limit_admin=0, rate_limit_viewer=1)
    admin, viewer = await key_of(client, "admin"), await key_of(client, "viewer")
    assert 429 not in await statuses(client, 50, **auth(admin))
    assert await statuses(client, 2, **auth(viewer)) == [200, 429]
