"""Bad input against every HTTP route of the real route table, with an admin key.

Each answer is a 2xx (the input was acceptable after all) or a 4xx with the one JSON error
body; never a 5xx, never a traceback; and a refused request changes no table.
"""

from __future__ import annotations

import asyncio
import gzip
import io
import json
import re
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import FormData
from conftest import Client, auth

from toombos_edge.appkeys import DATABASE, ENGINE
from toombos_edge.records.job import JobStatus
from toombos_edge.routes import ROUTES, Route

TABLES = ("api_keys", "jobs", "job_counts", "documents", "content", "content_versions",
          "cache_invalidations", "site_views", "projects")
_PARAM = re.compile(r"\{(\w+)(?::[^}]*)?\}")
JSON = {"Content-Type": "application/json"}

#: Path parameters that name nothing, or name it oddly.
BAD_IDS = ("job_00000000000000000000000000", "..", "%2e%2e", "%00", "a%00b", "%2F", "%25",
           "%C3%BCn%C3%AF%F0%9F%98%80", "%FF%FE", "x" * 2000, "-1", "null", "%20")

#: Raw bodies that are not a JSON object.
NOT_OBJECTS = (b"{", b"{'a': 1}", b"[1, 2]", b'"text"', b"42", b"null", b"true", b"\xff\xfe",
               b'{"a": NaN}', b'{"a": 1e999}', b'{"a": 123456789012345678901234567890}',
               b'{"a": 1,}', b"{}" + b" " * 10 + b"x", b"[" * 5000 + b"]" * 5000,
               b'{"a": "' + b"x" * (1025 << 10) + b'"}',
               # wrong types one level down
               b'{"content": {"title": [1], "text": 5}}', b'{"channels": [5, null]}',
               b'{"channels": ["email", "carrier-pigeon"]}', b'{"requests": [5, "x", []]}',
               b'{"requests": [{"channels": "email"}], "fail_fast": true}',
               b'{"recipients": ["a@b.example", 5]}', b'{"filter": {"status": 5}}',
               b'{"filter": {"from": "NaN"}}', b'{"metadata": {"a": {"b": [1e308]}}}',
               b'{"job_ids": [5]}', b'{"tags": [1, 2]}', b'{"params": {"upload": 5}}')

#: Fields some handler reads, each sent alone with each of BAD_VALUES.
FIELDS = ("kind", "params", "priority", "scheduled_for", "max_attempts", "idempotency_key",
          "correlation_id", "metadata", "document_id", "living_doc_id", "channels", "channel",
          "platforms", "title", "text", "content", "format", "content_type", "template_style",
          "style", "tone", "tags", "link", "recipients", "dry_run", "publish", "schedule_time",
          "requests", "parallel", "fail_fast", "strict", "cache_keys", "keys", "pattern",
          "job_ids", "ids", "filter", "status", "from", "to", "q", "name", "role", "data",
          "type", "content_id", "job_id", "to_version", "republish", "subject", "html", "posts")
BAD_VALUES: tuple[str, ...] = ('""', '"NaN"', '"nope"', "-1", "1e999", "1" + "0" * 30, "-1.5",
                               "true", "[]", '[1, {"a": null}]', '{"a": [1]}',
                               json.dumps("x" * 20_000), json.dumps("\u0000\ud7ff\U0001f600"))

#: Query strings every route gets (GETs and the rest: query parameters nobody reads too).
BAD_QUERIES = ("limit=-1", "limit=0", "limit=1000000000", "limit=NaN", "limit=1e3", "limit=",
               "limit=" + "9" * 400, "offset=-5", "offset=abc", "offset=1000000000000",
               "page=0", "page=x", "cursor=zzz", "cursor=job_00000000000000000000000000&offset=3",
               "status=nope", "status=pending,zzz", "format=exe", "source=mars", "mode=regex",
               "q=" + "x" * 5000, "q=%00%FF", "from=NaN", "to=yesterday",
               "from=2030-01-01&to=2020-01-01",
               # str.isdigit() is true for these, int() refuses the first two
               "limit=%C2%B2", "offset=%C2%B9", "from=%C2%B2", "to=%E2%91%A0", "limit=%D9%A3",
               "document_id=..%2F..%2Fetc", "document_id=doc_missing", "channels=nope",
               "channel=", "content_type=zzz", "template_style=zzz", "tags=" + ",".join("t" * 50),
               "kind=" + "k" * 500, "zzz=1&unknown[]=2", "%FF=%FE",
               "fields=nope", "fields=job_id,zzz", "fields=" + "," * 2000, "fields=%00",
               "fields=job_id&fields=status&fields=", "fields=" + "job_id," * 500)


@dataclass
class Tally:
    requests: int = 0
    refused: int = 0
    problems: list[str] = field(default_factory=list)


def http_routes() -> Iterator[Route]:
    for route in ROUTES:
        if not route.gated:
            yield route


def fill(route: Route, value: str = "x1") -> str:
    return _PARAM.sub(value, route.path)


def counts(conn: sqlite3.Connection) -> tuple[int, ...]:
    return tuple(conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in TABLES)


async def send(client: Client, tally: Tally, method: str, url: str, *,
               data: Any = None, headers: dict[str, str] | None = None) -> int:
    """One request; checks the answer's status and body, and that a refusal wrote nothing."""
    db = client.app[DATABASE]
    before = await db.read(counts)
    payload = io.BytesIO(data) if isinstance(data, bytes) else data  # big ones unwarned
    response = await client.request(method, url, data=payload, headers=headers)
    raw = await response.read()
    after = await db.read(counts)
    engine = client.app[ENGINE]
    engine.pause()  # /admin/queue/resume is a route too
    if response.status < 300:
        await quiet(client)
    tally.requests += 1
    where = f"{method} {url[:120]} ({str(data)[:60]!r})"
    status = response.status
    if b"Traceback" in raw or b'File "' in raw:
        tally.problems.append(f"{where}: a stack trace in the body")
    if status >= 500 or status < 200 or 300 <= status < 400:
        tally.problems.append(f"{where}: {status} {raw[:200]!r}")
    elif status >= 400:
        tally.refused += 1
        _check_error(tally, where, status, raw)
        if before != after:
            tally.problems.append(f"{where}: refused with {status} but wrote {before}->{after}")
    return status


async def quiet(client: Client) -> None:
    """Urgent jobs run while the queue is paused (and retry later): let them end, then
    cancel whatever an accepted request left, so nothing writes during the next one."""
    engine, db = client.app[ENGINE], client.app[DATABASE]
    async with asyncio.timeout(10):
        await engine.join()
    live = [status.value for status in JobStatus if not status.terminal]
    marks = ",".join("?" * len(live))
    ids = await db.read(lambda conn: [row[0] for row in conn.execute(
        f"SELECT id FROM jobs WHERE status IN ({marks})", live)])
    if ids:
        await engine.cancel_many(ids)
        async with asyncio.timeout(10):
            await engine.join()


def _check_error(tally: Tally, where: str, status: int, raw: bytes) -> None:
    try:
        body = json.loads(raw)
    except ValueError:
        tally.problems.append(f"{where}: {status} error body is not JSON: {raw[:100]!r}")
        return
    error = body.get("error") if isinstance(body, dict) else None
    shape_ok = (
        isinstance(error, dict) and set(body) == {"detail", "error"}
        and set(error) == {"message", "code", "status", "details"}
        and error["status"] == status and body["detail"] == error["message"]
        and isinstance(error["code"], str) and isinstance(error["message"], str)
    )
    if not shape_ok:
        tally.problems.append(f"{where}: {status} with the wrong error shape {body!r:.200}")


def with_auth(key: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    return {**auth(key), **(extra or {})}


async def sweep_path_ids(client: Client, key: str, tally: Tally) -> None:
    """Ids that name nothing or name it oddly; methods no route has; paths no one serves."""
    for route in http_routes():
        for method in ("PATCH", "TRACE", "PROPFIND"):
            status = await send(client, tally, method, fill(route), headers=with_auth(key))
            if status != 405:
                tally.problems.append(f"{method} {route.path}: {status}, not 405")
    for path in ("/nothing", "/api/v3/jobs", "/api/jobs/x/y/z", "/%00", "/ws/../health/.."):
        await send(client, tally, "GET", path, headers=with_auth(key))
    for route in http_routes():
        if "{" not in route.path:
            continue
        for bad in BAD_IDS:
            await send(client, tally, route.method, fill(route, bad), headers=with_auth(key))


def bad_bodies(salt: int) -> Iterator[bytes]:
    """Every field with every bad value at once, then each field alone with two of them
    (which two turns with ``salt``, so across routes every pair is sent somewhere)."""
    for value in BAD_VALUES:
        yield ("{" + ", ".join(f'"{name}": {value}' for name in FIELDS) + "}").encode()
    for index, name in enumerate(FIELDS):
        for step in (0, 7):
            value = BAD_VALUES[(salt + index + step) % len(BAD_VALUES)]
            yield f'{{"{name}": {value}}}'.encode()


async def sweep_bodies(client: Client, key: str, tally: Tally) -> None:
    for salt, route in enumerate(http_routes()):
        if route.method == "GET":
            continue
        url = fill(route, "job_00000000000000000000000000")
        headers = with_auth(key, JSON)
        for raw in (*NOT_OBJECTS, *bad_bodies(salt)):
            await send(client, tally, route.method, url, data=raw, headers=headers)


async def sweep_queries(client: Client, key: str, tally: Tally) -> None:
    for route in http_routes():
        url = fill(route, "job_00000000000000000000000000")
        for query in BAD_QUERIES:
            await send(client, tally, route.method, f"{url}?{query}",
                       headers=with_auth(key, JSON))


async def sweep_content_types(client: Client, key: str, tally: Tally) -> None:
    """Multipart or a form where JSON goes (and the reverse), and wrong Content-Types."""
    for route in http_routes():
        if route.method == "GET":
            continue
        url = fill(route, "job_00000000000000000000000000")
        form = FormData()
        form.add_field("file", b"%PDF-1.4 not really", filename="../../x.pdf",
                       content_type="application/pdf")
        form.add_field("metadata", "{not json")
        await send(client, tally, route.method, url, data=form, headers=with_auth(key))
        for content_type, raw in (
            ("application/x-www-form-urlencoded", b"title=%FF&metadata=[1]&format=exe"),
            ("multipart/form-data", b'{"kind": "noop"}'),
            ("multipart/form-data; boundary=zz", b"--zz\r\nbroken"),
            ("text/plain", b"plain words"),
            ("application/json; charset=latin-9", b'{"x": "\xe9"}'),
            ("application/xml", b"<a/>"),
            ("image/png", b"\x89PNG\r\n\x1a\n"),
        ):
            await send(client, tally, route.method, url, data=raw,
                       headers=with_auth(key, {"Content-Type": content_type}))


BOMB = gzip.compress(b'{"title": "' + b"a" * (64 << 20) + b'"}', compresslevel=9)


async def sweep_headers(client: Client, key: str, tally: Tally) -> None:
    """Bodies whose encoding lies or explodes, and odd headers the handlers read.

    Not here, as aiohttp answers them before the app sees the request: a bad ``deflate``
    body (the connection is dropped), ``br`` without Brotli (a text/plain 400), and a
    Content-Length longer than the body (the server rightly waits for the rest).
    """
    for route in http_routes():
        if route.method == "GET":
            continue
        url = fill(route, "job_00000000000000000000000000")
        for headers, raw in (
            ({"Content-Encoding": "gzip"}, b'{"not": "gzip"}'),
            ({"Content-Encoding": "zstd, gzip"}, b"junk"),
            ({"Content-Encoding": "gzip"}, BOMB),
            ({"Idempotency-Key": "k" * 5000}, b'{"kind": "noop", "title": "t", "text": "t"}'),
            ({"X-Correlation-ID": "\u00e9" * 3 + "../x"}, b"{}"),
        ):
            await send(client, tally, route.method, url, data=raw,
                       headers=with_auth(key, {**JSON, **headers}))


async def real_ids(client: Client, key: str) -> dict[str, str]:
    """Path parameters that name things that exist: a job, a document, a content item and
    its page, a spare key, a project; so the checks behind a successful lookup are swept too."""
    headers = with_auth(key)
    doc = await (await client.post("/api/documents", headers=headers,
                                   json={"title": "Real", "text": "Words " * 50})).json()
    job = await (await client.post("/api/v2/content/sync", headers=headers, json={
        "document_id": doc["id"], "channels": ["website"]})).json()
    async with asyncio.timeout(20):
        await client.app[ENGINE].join()
    done = await (await client.get(f"/api/jobs/{job['job_id']}", headers=headers)).json()
    website = done["results"]["website"]
    spare = await (await client.post("/admin/keys", headers=headers,
                                     json={"name": "spare", "role": "viewer"})).json()
    project = await (await client.post("/api/projects", headers=headers,
                                       json={"name": "Real"})).json()
    return {"job_id": job["job_id"], "doc_id": doc["id"], "content_id": website["content_id"],
            "slug": website["url"].rsplit("/", 1)[-1], "key_id": spare["id"],
            "component": "database", "client_id": "c1", "session_id": "s1",
            "project_id": project["id"]}


async def sweep_bodies_on_real_ids(client: Client, key: str, tally: Tally) -> None:
    client.app[ENGINE].resume()
    ids = await real_ids(client, key)
    client.app[ENGINE].pause()
    routes = sorted((r for r in http_routes() if "{" in r.path and r.method != "GET"),
                    key=lambda r: r.method == "DELETE")  # deletions last: they succeed
    for salt, route in enumerate(routes):
        url = _PARAM.sub(lambda m: ids[m.group(1)], route.path)
        for raw in (*NOT_OBJECTS[:8], *bad_bodies(salt)):
            await send(client, tally, route.method, url, data=raw,
                       headers=with_auth(key, JSON))


@pytest.fixture
async def paused(client: Client) -> Client:
    """Nothing runs in the background while the sweep compares table counts."""
    client.app[ENGINE].pause()
    return client


SWEEPS = (sweep_path_ids, sweep_bodies, sweep_bodies_on_real_ids, sweep_queries,
          sweep_content_types, sweep_headers)


@pytest.mark.parametrize("sweep", SWEEPS, ids=lambda f: f.__name__)
async def test_bad_input_is_refused_cleanly(paused: Client, admin_key: str, sweep: Any) -> None:
    tally = Tally()
    await sweep(paused, admin_key, tally)
    assert not tally.problems, f"{len(tally.problems)} problems:\n" + "\n".join(
        tally.problems[:40])
    assert tally.refused > tally.requests // 2  # the sweep really sends bad input
