"""Projects (seed 002) through HTTP on the real app and a real SQLite file: CRUD under both
prefixes, validation, documents in a project, the 409 on delete and both ways out of it,
roles, and the activity log."""

from __future__ import annotations

import io
import sqlite3
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import FormData
from conftest import Client, auth

from toombos_edge.appkeys import ACTIVITY, DATABASE, DOCUMENTS, ENGINE
from toombos_edge.projects import service

pytestmark = pytest.mark.backends

PREFIXES = ("/api/projects", "/api/v1/projects")


async def create_project(client: Client, key: str, **body: Any) -> dict[str, Any]:
    response = await client.post("/api/v1/projects", json=body, headers=auth(key))
    assert response.status == 201, await response.text()
    return dict(await response.json())


async def create_document(client: Client, key: str, **body: Any) -> dict[str, Any]:
    response = await client.post("/api/documents", json=body, headers=auth(key))
    assert response.status == 201, await response.text()
    return dict(await response.json())


async def get_json(client: Client, key: str, url: str, status: int = 200) -> dict[str, Any]:
    response = await client.get(url, headers=auth(key))
    assert response.status == status, await response.text()
    return dict(await response.json())


async def ingest_job(client: Client, key: str, **kwargs: Any) -> dict[str, Any]:
    """POST /api/ingest, then the job once the engine ran everything queued."""
    response = await client.post("/api/ingest", headers=auth(key), **kwargs)
    assert response.status == 202, await response.text()
    await client.app[ENGINE].join()
    return await get_json(client, key, f"/api/status/{(await response.json())['job_id']}")


def upload_form(data: bytes, filename: str, **fields: str) -> FormData:
    form = FormData()
    form.add_field("file", io.BytesIO(data), filename=filename,
                   content_type="application/octet-stream")
    for name, value in fields.items():
        form.add_field(name, value)
    return form


async def project_documents(client: Client, key: str, project_id: str) -> set[str]:
    body = await get_json(client, key, f"/api/documents?project_id={project_id}&limit=500")
    assert body["total"] == len(body["documents"])
    return {doc["id"] for doc in body["documents"]}


# --- CRUD ---------------------------------------------------------------------------------


async def test_create_get_update_delete_under_both_prefixes(
    client: Client, admin_key: str
) -> None:
    for prefix in PREFIXES:
        response = await client.post(prefix, headers=auth(admin_key), json={
            "name": "  Launch  ", "description": "Q3 launch notes", "metadata": {"team": "a"}})
        assert response.status == 201
        made = await response.json()
        assert made["id"].startswith("prj_")
        assert (made["name"], made["description"], made["metadata"], made["document_count"]) \
            == ("Launch", "Q3 launch notes", {"team": "a"}, 0)
        assert made["created_at"] == made["updated_at"] and made["created_at"].endswith("Z")
        for other in PREFIXES:
            assert await get_json(client, admin_key, f"{other}/{made['id']}") == made

        response = await client.put(f"{prefix}/{made['id']}", headers=auth(admin_key),
                                    json={"name": "Launch v2", "metadata": '{"team": "b"}'})
        assert response.status == 200
        changed = await response.json()
        assert (changed["name"], changed["description"], changed["metadata"]) == (
            "Launch v2", "Q3 launch notes", {"team": "b"})
        assert changed["updated_at"] >= made["updated_at"]
        assert changed["created_at"] == made["created_at"]
        assert await get_json(client, admin_key, f"{prefix}/{made['id']}") == changed

        response = await client.put(f"{prefix}/{made['id']}", headers=auth(admin_key),
                                    json={"description": None})
        assert (await response.json())["description"] == ""

        response = await client.delete(f"{prefix}/{made['id']}", headers=auth(admin_key))
        assert response.status == 200
        assert await response.json() == {
            "id": made["id"], "deleted": True, "documents": None, "documents_detached": 0,
            "documents_deleted": 0, "blobs_removed": 0}
        gone = await get_json(client, admin_key, f"{prefix}/{made['id']}", 404)
        assert gone["error"]["code"] == "not_found"
    assert (await get_json(client, admin_key, "/api/projects"))["total"] == 0


async def test_the_seeds_minimal_create_has_defaults(client: Client, admin_key: str) -> None:
    made = await create_project(client, admin_key, name="Bare")
    assert (made["description"], made["metadata"]) == ("", {})


async def test_list_pages_newest_first(client: Client, admin_key: str) -> None:
    ids = [(await create_project(client, admin_key, name=f"p{i}"))["id"] for i in range(4)]
    for prefix in PREFIXES:
        body = await get_json(client, admin_key, f"{prefix}?limit=2&offset=1")
        assert (body["total"], body["limit"], body["offset"]) == (4, 2, 1)
        assert [p["id"] for p in body["projects"]] == [ids[2], ids[1]]
    everything = await get_json(client, admin_key, "/api/projects")
    assert (everything["limit"], everything["offset"]) == (50, 0)
    assert [p["id"] for p in everything["projects"]] == ids[::-1]
    past_the_end = await get_json(client, admin_key, "/api/projects?offset=10")
    assert (past_the_end["projects"], past_the_end["total"]) == ([], 4)


@pytest.mark.parametrize("query", ["limit=0", "limit=501", "limit=ten", "offset=-1",
                                   "limit=%C2%B2"])
async def test_bad_paging_is_a_422_naming_the_parameter(
    client: Client, admin_key: str, query: str
) -> None:
    body = await get_json(client, admin_key, f"/api/projects?{query}", 422)
    assert body["error"]["code"] == "invalid"
    name = query.partition("=")[0]
    assert body["detail"].startswith(f"{name}:") and body["error"]["details"]["field"] == name


# --- validation and unknown ids -------------------------------------------------------------


@pytest.mark.parametrize(("body", "field"), [
    ({}, "name"),
    ({"name": None}, "name"),
    ({"name": 7}, "name"),
    ({"name": "   "}, "name"),
    ({"name": "x" * 201}, "name"),
    ({"name": "ok", "description": ["a"]}, "description"),
    ({"name": "ok", "description": "d" * 10_001}, "description"),
    ({"name": "ok", "metadata": [1, 2]}, "metadata"),
    ({"name": "ok", "metadata": "{not json"}, "metadata"),
    ({"name": "ok", "metadata": 3}, "metadata"),
])
async def test_a_bad_create_is_a_422_naming_the_field_and_makes_nothing(
    client: Client, admin_key: str, body: dict[str, Any], field: str
) -> None:
    response = await client.post("/api/projects", json=body, headers=auth(admin_key))
    assert response.status == 422
    error = await response.json()
    assert error["error"]["code"] == "invalid"
    assert error["detail"].startswith(f"{field}:")
    assert error["error"]["details"]["field"] == field
    assert (await get_json(client, admin_key, "/api/projects"))["total"] == 0


async def test_bodies_that_are_not_json_objects(client: Client, admin_key: str) -> None:
    response = await client.post("/api/projects", data=b"{oops", headers={
        **auth(admin_key), "Content-Type": "application/json"})
    assert response.status == 400
    response = await client.post("/api/projects", json=["name"], headers=auth(admin_key))
    assert response.status == 422
    assert (await get_json(client, admin_key, "/api/projects"))["total"] == 0


@pytest.mark.parametrize(("body", "field"), [
    ({}, "nothing to update"),
    ({"unknown": 1}, "nothing to update"),
    ({"name": ""}, "name:"),
    ({"name": None}, "name:"),
    ({"description": 5}, "description:"),
    ({"metadata": "[]"}, "metadata:"),
])
async def test_a_bad_update_is_a_422_and_changes_nothing(
    client: Client, admin_key: str, body: dict[str, Any], field: str
) -> None:
    made = await create_project(client, admin_key, name="Keep", description="d",
                                metadata={"k": 1})
    response = await client.put(f"/api/projects/{made['id']}", json=body,
                                headers=auth(admin_key))
    assert response.status == 422
    assert field in (await response.json())["detail"]
    assert await get_json(client, admin_key, f"/api/projects/{made['id']}") == made


async def test_an_unknown_project_is_a_404_for_get_update_and_delete(
    client: Client, admin_key: str
) -> None:
    url = "/api/v1/projects/prj_nope"
    for method, body in (("GET", None), ("PUT", {"name": "x"}), ("DELETE", None)):
        response = await client.request(method, url, json=body, headers=auth(admin_key))
        assert response.status == 404, method
        error = await response.json()
        assert error["error"]["code"] == "not_found"
        assert "prj_nope" in error["detail"]


# --- documents in a project ------------------------------------------------------------------


async def test_documents_join_a_project_every_way_and_filter_by_it(
    client: Client, admin_key: str
) -> None:
    project = await create_project(client, admin_key, name="Docs")
    other = await create_project(client, admin_key, name="Other")
    pid = project["id"]
    created = await create_document(client, admin_key, text="made in it", project_id=pid)
    assert created["project_id"] == pid
    moved = await create_document(client, admin_key, text="moved into it")
    assert moved["project_id"] is None
    response = await client.put(f"/api/v1/documents/{moved['id']}", headers=auth(admin_key),
                                json={"project_id": pid})
    assert (response.status, (await response.json())["project_id"]) == (200, pid)
    uploaded = await ingest_job(client, admin_key,
                                data=upload_form(b"uploaded zebrafinch", "up.txt",
                                                 project_id=pid))
    assert uploaded["status"] == "completed", uploaded
    as_text = await ingest_job(client, admin_key,
                               json={"text": "sent as text", "project_id": pid})
    assert as_text["status"] == "completed", as_text
    await create_document(client, admin_key, text="elsewhere", project_id=other["id"])
    await create_document(client, admin_key, text="in none")

    expected = {created["id"], moved["id"], uploaded["document_id"], as_text["document_id"]}
    assert await project_documents(client, admin_key, pid) == expected
    doc = await get_json(client, admin_key, f"/api/documents/{uploaded['document_id']}")
    assert doc["project_id"] == pid
    assert (await get_json(client, admin_key, f"/api/projects/{pid}"))["document_count"] == 4
    listed = {p["id"]: p["document_count"]
              for p in (await get_json(client, admin_key, "/api/projects"))["projects"]}
    assert listed == {pid: 4, other["id"]: 1}
    hits = await get_json(client, admin_key, "/api/search?q=zebrafinch")
    assert [hit["project_id"] for hit in hits["results"]] == [pid]
    # the filter composes with the others, and an unknown project simply matches nothing
    uploads = await get_json(client, admin_key, f"/api/documents?project_id={pid}&source=upload")
    assert [d["id"] for d in uploads["documents"]] == [uploaded["document_id"]]
    assert await project_documents(client, admin_key, "prj_nope") == set()

    response = await client.put(f"/api/documents/{moved['id']}", headers=auth(admin_key),
                                json={"project_id": None})
    assert (await response.json())["project_id"] is None
    assert await project_documents(client, admin_key, pid) == expected - {moved["id"]}


async def test_an_update_without_project_id_keeps_the_project(
    client: Client, admin_key: str
) -> None:
    pid = (await create_project(client, admin_key, name="Stay"))["id"]
    doc = await create_document(client, admin_key, text="v1", project_id=pid)
    response = await client.put(f"/api/documents/{doc['id']}", headers=auth(admin_key),
                                json={"text": "v2"})
    assert (await response.json())["project_id"] == pid


async def test_an_unknown_project_on_a_document_is_a_422_naming_the_field(
    client: Client, admin_key: str
) -> None:
    def names_the_field(error: dict[str, Any]) -> bool:
        return (error["error"]["code"] == "invalid" and "'project_id'" in error["detail"]
                and error["error"]["details"]["field"] == "project_id")

    response = await client.post("/api/documents", headers=auth(admin_key),
                                 json={"text": "t", "project_id": "prj_nope"})
    assert response.status == 422
    assert names_the_field(await response.json())
    assert (await get_json(client, admin_key, "/api/documents"))["total"] == 0

    doc = await create_document(client, admin_key, text="t")
    response = await client.put(f"/api/documents/{doc['id']}", headers=auth(admin_key),
                                json={"project_id": "prj_nope", "title": "not this"})
    assert response.status == 422
    assert names_the_field(await response.json())
    assert await get_json(client, admin_key, f"/api/documents/{doc['id']}") == doc

    response = await client.post("/api/documents", headers=auth(admin_key),
                                 json={"text": "t", "project_id": 5})
    assert response.status == 422
    assert (await response.json())["error"]["details"]["field"] == "project_id"


async def test_an_ingest_into_an_unknown_project_is_refused_before_any_job(
    client: Client, admin_key: str
) -> None:
    for kwargs in ({"json": {"text": "t", "project_id": "prj_nope"}},
                   {"data": upload_form(b"bytes", "a.txt", project_id="prj_nope")}):
        response = await client.post("/api/ingest", headers=auth(admin_key), **kwargs)
        assert response.status == 422
        assert "'project_id'" in (await response.json())["detail"]
    assert (await get_json(client, admin_key, "/api/jobs"))["total"] == 0
    folder = client.app[DOCUMENTS].uploads.root
    assert [p for p in folder.rglob("*") if p.is_file()] == []  # the upload went too


async def test_a_project_deleted_before_its_ingest_runs_fails_the_job_clearly(
    client: Client, admin_key: str
) -> None:
    pid = (await create_project(client, admin_key, name="Brief"))["id"]
    client.app[ENGINE].pause()
    response = await client.post("/api/ingest", headers=auth(admin_key),
                                 json={"text": "late", "project_id": pid})
    assert response.status == 202
    job_id = (await response.json())["job_id"]
    assert (await client.delete(f"/api/projects/{pid}", headers=auth(admin_key))).status == 200
    client.app[ENGINE].resume()
    await client.app[ENGINE].join()
    job = await get_json(client, admin_key, f"/api/status/{job_id}")
    assert job["status"] == "failed"
    assert "'project_id'" in job["last_error"]
    assert (await get_json(client, admin_key, "/api/documents"))["total"] == 0


async def test_a_duplicate_upload_keeps_its_first_project(client: Client, admin_key: str) -> None:
    first = (await create_project(client, admin_key, name="First"))["id"]
    second = (await create_project(client, admin_key, name="Second"))["id"]
    one = await ingest_job(client, admin_key,
                           data=upload_form(b"same bytes", "a.txt", project_id=first))
    two = await ingest_job(client, admin_key,
                           data=upload_form(b"same bytes", "b.txt", project_id=second))
    assert (two["output"]["duplicate"], two["document_id"]) == (True, one["document_id"])
    assert await project_documents(client, admin_key, first) == {one["document_id"]}
    assert await project_documents(client, admin_key, second) == set()


# --- deleting a project that has documents ----------------------------------------------------


async def filled_project(client: Client, key: str) -> tuple[str, list[str], str]:
    """A project with two text documents and an upload; and an outside document."""
    pid = (await create_project(client, key, name="Full"))["id"]
    texts = [(await create_document(client, key, text=f"t{i}", project_id=pid))["id"]
             for i in range(2)]
    job = await ingest_job(client, key, data=upload_form(b"blob bytes", "b.txt",
                                                         project_id=pid))
    outside = (await create_document(client, key, text="outside"))["id"]
    return pid, [*texts, job["document_id"]], outside


async def test_deleting_a_project_with_documents_is_a_409_and_changes_nothing(
    client: Client, admin_key: str
) -> None:
    pid, docs, _ = await filled_project(client, admin_key)
    for query in ("", "?documents="):
        response = await client.delete(f"/api/projects/{pid}{query}", headers=auth(admin_key))
        assert response.status == 409
        error = await response.json()
        assert error["error"]["code"] == "conflict"
        assert error["error"]["details"] == {"documents": 3, "choices": ["detach", "delete"]}
        assert "?documents=detach" in error["detail"]
    response = await client.delete(f"/api/projects/{pid}?documents=burn",
                                   headers=auth(admin_key))
    assert response.status == 422
    assert (await response.json())["detail"].startswith("documents:")
    assert (await get_json(client, admin_key, f"/api/projects/{pid}"))["document_count"] == 3
    assert await project_documents(client, admin_key, pid) == set(docs)


async def test_delete_with_documents_detach_keeps_them_without_a_project(
    client: Client, admin_key: str
) -> None:
    pid, docs, outside = await filled_project(client, admin_key)
    response = await client.delete(f"/api/v1/projects/{pid}?documents=detach",
                                   headers=auth(admin_key))
    assert response.status == 200
    assert await response.json() == {
        "id": pid, "deleted": True, "documents": "detach", "documents_detached": 3,
        "documents_deleted": 0, "blobs_removed": 0}
    await get_json(client, admin_key, f"/api/projects/{pid}", 404)
    for doc_id in docs:
        doc = await get_json(client, admin_key, f"/api/documents/{doc_id}")
        assert doc["project_id"] is None
    raw = await client.get(f"/api/documents/{docs[2]}/raw", headers=auth(admin_key))
    assert await raw.read() == b"blob bytes"
    assert (await get_json(client, admin_key, "/api/documents"))["total"] == 4
    assert (await get_json(client, admin_key, f"/api/documents/{outside}"))["project_id"] is None


async def test_delete_with_documents_delete_removes_them_and_their_unused_blobs(
    client: Client, admin_key: str
) -> None:
    pid, docs, outside = await filled_project(client, admin_key)
    blob = client.app[DOCUMENTS].blobs.path(
        (await get_json(client, admin_key, f"/api/documents/{docs[2]}"))["blob_sha256"])
    assert blob.is_file()
    response = await client.delete(f"/api/projects/{pid}?documents=delete",
                                   headers=auth(admin_key))
    assert response.status == 200
    assert await response.json() == {
        "id": pid, "deleted": True, "documents": "delete", "documents_detached": 0,
        "documents_deleted": 3, "blobs_removed": 1}
    await get_json(client, admin_key, f"/api/projects/{pid}", 404)
    for doc_id in docs:
        await get_json(client, admin_key, f"/api/documents/{doc_id}", 404)
    assert not blob.exists()
    remaining = await get_json(client, admin_key, "/api/documents")
    assert [d["id"] for d in remaining["documents"]] == [outside]
    assert (await get_json(client, admin_key, "/api/search?q=t0"))["total"] == 0


async def test_delete_keeps_a_blob_that_a_document_outside_still_uses(
    client: Client, admin_key: str
) -> None:
    pid = (await create_project(client, admin_key, name="Shared"))["id"]
    first = await ingest_job(client, admin_key, data=upload_form(b"shared", "a.txt"))
    # An edited document no longer stands for its bytes: the same upload makes a new one
    # that shares the blob.
    await client.put(f"/api/documents/{first['document_id']}", headers=auth(admin_key),
                     json={"text": "edited"})
    second = await ingest_job(client, admin_key,
                              data=upload_form(b"shared", "b.txt", project_id=pid))
    assert second["document_id"] != first["document_id"]
    response = await client.delete(f"/api/projects/{pid}?documents=delete",
                                   headers=auth(admin_key))
    assert (await response.json())["blobs_removed"] == 0
    raw = await client.get(f"/api/documents/{first['document_id']}/raw",
                           headers=auth(admin_key))
    assert await raw.read() == b"shared"


@pytest.mark.parametrize("choice", ["detach", "delete"])
async def test_a_large_project_goes_in_several_transactions(
    client: Client, admin_key: str, monkeypatch: pytest.MonkeyPatch, choice: str
) -> None:
    monkeypatch.setattr(service, "BATCH", 2)
    pid = (await create_project(client, admin_key, name="Big"))["id"]
    for i in range(5):
        await create_document(client, admin_key, text=f"d{i}", project_id=pid)
    response = await client.delete(f"/api/projects/{pid}?documents={choice}",
                                   headers=auth(admin_key))
    assert response.status == 200
    counted = {"detach": "documents_detached", "delete": "documents_deleted"}[choice]
    assert (await response.json())[counted] == 5
    await get_json(client, admin_key, f"/api/projects/{pid}", 404)
    expected_left = 5 if choice == "detach" else 0
    assert (await get_json(client, admin_key, "/api/documents"))["total"] == expected_left


@pytest.mark.sqlite_only  # reads the SQLite file itself
async def test_the_database_refuses_a_dangling_project_id_by_itself(
    client: Client, admin_key: str
) -> None:
    """The foreign key of migration 0009 backs the service's checks."""
    pid = (await create_project(client, admin_key, name="Guarded"))["id"]
    doc = await create_document(client, admin_key, text="t", project_id=pid)

    def delete_project_alone(conn: sqlite3.Connection) -> None:
        conn.execute("DELETE FROM projects WHERE id = ?", (pid,))

    def dangle(conn: sqlite3.Connection) -> None:
        conn.execute("UPDATE documents SET project_id = 'prj_nope' WHERE id = ?", (doc["id"],))

    for op in (delete_project_alone, dangle):
        with pytest.raises(sqlite3.IntegrityError):
            await client.app[DATABASE].write(op)
    assert (await get_json(client, admin_key, f"/api/documents/{doc['id']}"))["project_id"] \
        == pid


@pytest.mark.sqlite_only  # reads the SQLite file itself
async def test_the_project_filter_reads_its_index(client: Client) -> None:
    plan = await client.app[DATABASE].read(lambda conn: conn.execute(
        "EXPLAIN QUERY PLAN SELECT id FROM documents WHERE project_id = ? "
        "ORDER BY seq DESC LIMIT 50", ("prj_x",)).fetchall())
    assert any("documents_project" in row[-1] for row in plan), plan


# --- roles and the activity log ---------------------------------------------------------------


async def test_viewers_read_and_operators_write(
    client: Client, make_key: Callable[[str], Awaitable[str]]
) -> None:
    viewer, operator = await make_key("viewer"), await make_key("operator")
    assert (await client.get("/api/projects")).status == 401
    assert (await client.post("/api/projects", json={"name": "x"})).status == 401
    response = await client.post("/api/projects", json={"name": "x"}, headers=auth(viewer))
    assert response.status == 403
    made = await create_project(client, operator, name="Ops")
    url = f"/api/v1/projects/{made['id']}"
    assert (await get_json(client, viewer, url))["name"] == "Ops"
    assert (await get_json(client, viewer, "/api/projects"))["total"] == 1
    for method, body in (("PUT", {"name": "y"}), ("DELETE", None)):
        response = await client.request(method, url, json=body, headers=auth(viewer))
        assert response.status == 403, method
    assert (await get_json(client, viewer, url))["name"] == "Ops"
    response = await client.put(url, json={"name": "Ops 2"}, headers=auth(operator))
    assert response.status == 200
    assert (await client.delete(url, headers=auth(operator))).status == 200


async def test_activity_lines_name_the_project_and_its_actor_but_not_its_contents(
    client: Client, admin_key: str, make_key: Callable[[str], Awaitable[str]]
) -> None:
    operator = await make_key("operator")
    made = await create_project(client, operator, name="Audited",
                                description="secret plans", metadata={"token": "hush"})
    await create_document(client, operator, text="t", project_id=made["id"])
    await client.put(f"/api/projects/{made['id']}", headers=auth(operator),
                     json={"description": "new secret plans", "metadata": {"token": "h2"}})
    await client.delete(f"/api/projects/{made['id']}?documents=detach", headers=auth(operator))
    await client.app[ACTIVITY].flush()

    body = await get_json(client, admin_key,
                          "/api/activity?type=project.created,project.updated,project.deleted")
    lines = body["activity"][::-1]  # newest first
    assert [line["type"] for line in lines] == [
        "project.created", "project.updated", "project.deleted"]
    assert {line["target"] for line in lines} == {made["id"]}
    assert {line["actor"]["name"] for line in lines} == {"test operator"}
    assert [line["data"] for line in lines] == [
        {"project_id": made["id"], "name": "Audited"},
        {"project_id": made["id"], "name": "Audited", "changed": ["description", "metadata"]},
        {"project_id": made["id"], "name": "Audited", "documents": "detach",
         "documents_detached": 1, "documents_deleted": 0},
    ]
    text = client.app[ACTIVITY].file.path.read_text()
    assert "secret plans" not in text and "hush" not in text
