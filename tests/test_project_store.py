"""The ProjectStore's promises, on each backend: SQLite over a real file, PostgreSQL on a
real server (the parameter of ``backend`` names it in the test id).

Each test speaks only the protocols (``projects``, ``documents``).
"""

from __future__ import annotations

import asyncio
import hashlib

import pytest

from toombos_edge.ids import new_id
from toombos_edge.records.document import Document, Origin, text_sha256
from toombos_edge.records.project import OnDocuments, Project, ProjectChanges, UnknownProject
from toombos_edge.store import Database
from toombos_edge.store.documents import DocumentStore
from toombos_edge.store.postgres.documents import PgDocumentStore
from toombos_edge.store.postgres.projects import PgProjectStore
from toombos_edge.store.projects import DeleteStep, ProjectStore
from toombos_edge.store.sqlite.documents import SqliteDocumentStore
from toombos_edge.store.sqlite.projects import SqliteProjectStore

NOW = 1_700_000_000_000


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest) -> tuple[ProjectStore, DocumentStore]:
    """The projects and documents of one database of the backend the id names."""
    if request.param == "sqlite":
        db: Database = request.getfixturevalue("db")
        return SqliteProjectStore(db), SqliteDocumentStore(db)
    pg = request.getfixturevalue("pg_database")
    return PgProjectStore(pg), PgDocumentStore(pg)


@pytest.fixture
def projects(backend: tuple[ProjectStore, DocumentStore]) -> ProjectStore:
    return backend[0]


@pytest.fixture
def documents(backend: tuple[ProjectStore, DocumentStore]) -> DocumentStore:
    return backend[1]


def project(name: str = "P") -> Project:
    return Project(new_id("prj"), name, "about it", {"k": "v"}, NOW, NOW)


async def add_documents(documents: DocumentStore, project_id: str, n: int) -> list[Document]:
    made = []
    for i in range(n):
        text = f"document {i}"
        blob = hashlib.sha256(text.encode()).hexdigest() if i % 2 else None
        doc = Document(new_id("doc"), f"d{i}", text, "text", text_sha256(text), len(text),
                       Origin.upload if blob else Origin.api, NOW, NOW, blob_sha256=blob,
                       project_id=project_id)
        await documents.insert(doc)
        made.append(doc)
    return made


async def test_a_project_is_read_with_its_document_count(
    projects: ProjectStore, documents: DocumentStore
) -> None:
    first, second = project("first"), project("second")
    await projects.insert(first)
    await projects.insert(second)
    await add_documents(documents, first.id, 3)
    got = await projects.get(first.id)
    assert got is not None and (got.name, got.metadata, got.document_count) == (
        "first", {"k": "v"}, 3)
    assert await projects.get("prj_nope") is None
    assert (await projects.exists(first.id), await projects.exists("prj_nope")) == (True, False)
    page, total = await projects.list_page(limit=1, offset=0)
    assert ([p.id for p in page], total) == ([second.id], 2)
    page, _ = await projects.list_page(limit=5, offset=1)
    assert [(p.id, p.document_count) for p in page] == [(first.id, 3)]


async def test_update_sets_only_the_fields_given(projects: ProjectStore) -> None:
    made = project()
    await projects.insert(made)
    changed = await projects.update(made.id, ProjectChanges(description="new"), NOW + 7)
    assert changed is not None and changed == await projects.get(made.id)
    assert (changed.name, changed.description, changed.metadata, changed.updated_at) == (
        "P", "new", {"k": "v"}, NOW + 7)
    assert await projects.update("prj_nope", ProjectChanges(name="x"), NOW) is None


async def test_without_a_choice_documents_block_the_delete_and_nothing_changes(
    projects: ProjectStore, documents: DocumentStore
) -> None:
    made = project()
    await projects.insert(made)
    docs = await add_documents(documents, made.id, 2)
    step = await projects.delete_step(made.id, None, most=10, now=NOW)
    assert step == DeleteStep(done=False, blocking=2)
    assert (await projects.get(made.id)) is not None
    assert [await documents.get(d.id) for d in docs] == docs
    empty = project()
    await projects.insert(empty)
    assert await projects.delete_step(empty.id, None, most=10, now=NOW) == DeleteStep()
    assert await projects.get(empty.id) is None
    assert await projects.delete_step(empty.id, None, most=10, now=NOW) is None


async def test_detach_goes_in_steps_and_the_project_with_the_last(
    projects: ProjectStore, documents: DocumentStore
) -> None:
    made = project()
    await projects.insert(made)
    docs = await add_documents(documents, made.id, 3)
    first = await projects.delete_step(made.id, OnDocuments.detach, most=2, now=NOW + 1)
    assert first == DeleteStep(detached=2, done=False)
    assert await projects.exists(made.id)
    last = await projects.delete_step(made.id, OnDocuments.detach, most=2, now=NOW + 2)
    assert last == DeleteStep(detached=1, done=True)
    assert not await projects.exists(made.id)
    kept = [await documents.get(d.id) for d in docs]
    assert all(d is not None and d.project_id is None and d.updated_at > NOW for d in kept)


async def test_delete_removes_the_documents_and_names_their_blobs(
    projects: ProjectStore, documents: DocumentStore
) -> None:
    made = project()
    await projects.insert(made)
    docs = await add_documents(documents, made.id, 2)
    step = await projects.delete_step(made.id, OnDocuments.delete, most=2, now=NOW)
    assert step is not None and not step.done
    assert sorted(step.blobs, key=str) == sorted([d.blob_sha256 for d in docs], key=str)
    assert [await documents.get(d.id) for d in docs] == [None, None]
    assert await projects.delete_step(made.id, OnDocuments.delete, most=2, now=NOW) \
        == DeleteStep(done=True)
    assert not await projects.exists(made.id)


async def test_documents_added_while_a_project_goes_are_detached_or_refused(
    projects: ProjectStore, documents: DocumentStore
) -> None:
    """Several nodes (here: concurrent transactions) adding documents to a project that
    another deletes: each add lands before the step (and is detached) or after it (and is
    refused); the delete never fails, and no document is left naming the gone project."""
    made = project()
    await projects.insert(made)
    adds = [documents.insert(Document(new_id("doc"), "t", f"x{i}", "text", text_sha256(f"x{i}"),
                                      2, Origin.api, NOW, NOW, project_id=made.id))
            for i in range(12)]
    results = await asyncio.gather(
        *adds[:6], projects.delete_step(made.id, OnDocuments.detach, most=100, now=NOW + 1),
        *adds[6:], return_exceptions=True)
    step = results[6]
    assert isinstance(step, DeleteStep) and step.done, step
    added = [r for r in results[:6] + results[7:] if not isinstance(r, UnknownProject)]
    assert added == [None] * len(added)
    assert step.detached == len(added)
    assert not await projects.exists(made.id)
    assert await documents.list_page(source=None, fmt=None, project_id=made.id, limit=50,
                                     offset=0) == ([], 0)
