"""A job's ``results`` are channel results whatever its kind, the rest is its ``output``
(jobs/results.py): the public dashboard reads ``.status`` and ``.timestamp`` of every entry
of ``results`` and lower-cases ``document_id``. Driven through the real app: a real ingest,
a real generate and a plugin kind registered as a package's would be."""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path
from typing import Any

import orjson
import pytest
from conftest import Client, auth, finished

from toombos_edge.appkeys import ENGINE
from toombos_edge.ids import iso, new_id, now_ms
from toombos_edge.jobs.kinds import JobContext, JobKind, Outcome, PermanentFailure
from toombos_edge.store.sqlite.database import apply_migrations, migrations

pytestmark = pytest.mark.backends

TEXT = "Release notes: the importer now keeps tables and footnotes intact. " * 8
#: The job object's fields in CLIENT-CONTRACT.md ("The job object").
CONTRACT_JOB = {"job_id", "document_id", "channels", "status", "created_at", "updated_at",
                "scheduled_for", "started_at", "completed_at", "results", "errors",
                "metadata", "correlation_id"}
#: Those the client types as (non-optional) strings: never null.
STRINGS = ("job_id", "document_id", "status", "created_at", "updated_at")
LOOSE = {"rows": 3, "note": "ok", "odd": {"no": "status"}, "missing": None, "flag": False}


async def tally(ctx: JobContext) -> Outcome:
    """A plugin that mixes a channel result with loose values, as third-party kinds do."""
    return Outcome({"sink": {"status": "success", "url": "https://example.test/1"}, **LOOSE})


async def half_refused(ctx: JobContext) -> None:
    raise PermanentFailure("twitter refused", Outcome(
        {"email": {"status": "success"}, "twitter": {"status": "failed"}, "sent": 1},
        partial=True))


def is_iso(value: Any) -> bool:
    return isinstance(value, str) and value.endswith("Z") and "T" in value


def assert_client_shape(job: dict[str, Any]) -> None:
    assert set(job) >= CONTRACT_JOB, CONTRACT_JOB - set(job)
    for name in STRINGS:
        assert isinstance(job[name], str), (name, job[name])
    assert all(isinstance(channel, str) for channel in job["channels"])
    assert isinstance(job["results"], dict) and isinstance(job["output"], dict)
    for name, result in job["results"].items():
        assert isinstance(result, dict) and result["status"] in {"success", "failed"}, name
        assert is_iso(result["timestamp"]), name


async def submit_all(client: Client, key: str) -> dict[str, str]:
    headers = {**auth(key), "Content-Type": "application/json"}
    engine = client.app[ENGINE]
    engine.registry.register(JobKind("tally", tally))
    ingest = await (await client.post("/api/ingest", headers=headers,
                                      json={"title": "Notes", "text": TEXT})).json()
    generate = await (await client.post("/api/v2/content/sync", headers=headers, json={
        "channels": ["email", "website"], "title": "Importer", "text": TEXT})).json()
    plugin = await engine.submit("tally")
    waiting = await engine.submit("tally", scheduled_for=now_ms() + 3_600_000)
    for job_id in (ingest["job_id"], generate["job_id"], plugin.id):
        assert (await finished(client, job_id))["status"] == "completed"
    return {"ingest": ingest["job_id"], "generate": generate["job_id"], "plugin": plugin.id,
            "waiting": waiting.id}


async def test_a_list_of_ingest_generate_and_plugin_jobs_is_the_clients_shape(
    client: Client, admin_key: str
) -> None:
    ids = await submit_all(client, admin_key)
    headers = {**auth(admin_key), "Content-Type": "application/json"}
    listed = await (await client.get("/api/v2/jobs?limit=100", headers=headers)).json()
    jobs = {job["job_id"]: job for job in listed["jobs"]}
    assert set(jobs) == set(ids.values())
    for job in jobs.values():
        assert_client_shape(job)

    ingest = jobs[ids["ingest"]]
    document = ingest["results"]["document"]
    assert set(ingest["results"]) == {"document"} and document["status"] == "success"
    assert ingest["document_id"] == document["document_id"] == ingest["output"]["document_id"]
    assert ingest["document_id"].startswith("doc_") and document["duplicate"] is False
    assert ingest["output"]["bytes"] == len(TEXT.strip().encode())  # the text as stored
    assert len(ingest["output"]["sha256"]) == 64 and ingest["output"]["format"] == "text"

    generate = jobs[ids["generate"]]
    assert set(generate["results"]) == {"email", "website"} and generate["output"] == {}

    plugin = jobs[ids["plugin"]]
    assert plugin["results"] == {"sink": {"status": "success", "url": "https://example.test/1",
                                          "timestamp": plugin["completed_at"]}}
    assert plugin["output"] == LOOSE and plugin["document_id"] == ""
    assert jobs[ids["waiting"]]["document_id"] == "" and jobs[ids["waiting"]]["results"] == {}

    # The light list (?fields=) renders rows without a Job: the same values.
    light = await (await client.get("/api/v2/jobs?limit=100&fields=document_id,results,output",
                                    headers=headers)).json()
    for row in light["jobs"]:
        full = jobs[row["job_id"]]
        assert row == {key: full[key] for key in ("job_id", "document_id", "results", "output")}


async def test_a_permanent_failure_keeps_channel_results_and_moves_the_rest(
    client: Client
) -> None:
    engine = client.app[ENGINE]
    engine.registry.register(JobKind("half_refused", half_refused))
    job = (await finished(client, (await engine.submit("half_refused")).id))
    assert job["status"] == "partial" and job["output"] == {"sent": 1}
    stamp = job["completed_at"]
    assert job["results"] == {"email": {"status": "success", "timestamp": stamp},
                              "twitter": {"status": "failed", "timestamp": stamp}}


@pytest.mark.sqlite_only  # reads the SQLite file itself
def test_migration_0008_splits_stored_results_and_counts_hours(tmp_path: Path) -> None:
    """Rows written before 0008 read the new way: loose values in output, an ingest job's
    document as its one result, channel results untouched; job_hours counted from them."""
    now = now_ms()
    old_ingest = {"document_id": "doc_1", "duplicate": True, "bytes": 12, "pages": None,
                  "meta": {"a": [1, 2]}}
    rows = [
        ("ingest", "completed", "[]", old_ingest, "doc_1"),
        ("generate", "partial", '["email","social_twitter"]',
         {"email": {"status": "success"}, "twitter": {"status": "failed", "error": "x"}}, None),
        ("gate", "completed", "[]", {"gate": "opened", "sink": {"status": "success"}}, None),
        ("noop", "pending", "[]", {}, None),
    ]
    with contextlib.closing(sqlite3.connect(tmp_path / "edge.db", isolation_level=None)) as conn:
        for number, _name, sql in migrations():
            if number > 6:
                break
            conn.executescript(f"BEGIN;\n{sql}\nPRAGMA user_version = {number};\nCOMMIT;")
        for kind, status, channels, results, doc in rows:
            done = now if status != "pending" else None
            conn.execute(
                "INSERT INTO jobs (id, kind, status, channels, results, document_id, "
                "max_attempts, created_at, updated_at, due_at, started_at, completed_at) "
                "VALUES (?, ?, ?, ?, ?, ?, 1, ?, ?, ?, ?, ?)",
                (new_id("job"), kind, status, channels, orjson.dumps(results).decode(), doc,
                 now - 5000, now, now, done and now - 2000, done))
        apply_migrations(conn)
        got = {kind: (orjson.loads(results), orjson.loads(output)) for kind, results, output
               in conn.execute("SELECT kind, results, output FROM jobs")}
        hours = conn.execute("SELECT channel, status, n, run_ms, runs FROM job_hours "
                             "ORDER BY channel, status").fetchall()
    stamp = iso(now)
    assert got["ingest"] == ({"document": {"status": "success", "document_id": "doc_1",
                                           "duplicate": True, "timestamp": stamp}}, old_ingest)
    assert got["generate"] == (rows[1][3], {})
    assert got["gate"] == ({"sink": {"status": "success"}}, {"gate": "opened"})
    assert got["noop"] == ({}, {})
    # Status '' counts every job made; an end status those that ended so (with run times).
    assert hours == [("", "", 4, 0, 0), ("", "completed", 2, 4000, 2), ("", "partial", 1, 2000, 1),
                     ("email", "", 1, 0, 0), ("email", "partial", 1, 2000, 1),
                     ("social_twitter", "", 1, 0, 0), ("social_twitter", "partial", 1, 2000, 1)]
