"""The DocumentStore's promises, on each backend: SQLite over a real file, PostgreSQL on a
real server (the ``store`` fixture's parameter names it in the test id).

Each test speaks only the protocols (``store``, ``projects``).
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import random
from typing import Any

import pytest
from aiohttp import FormData
from conftest import Client, auth

from toombos_edge.appkeys import DATABASE, ENGINE
from toombos_edge.ids import new_id
from toombos_edge.records.document import Document, DocumentUpdate, Origin, text_sha256
from toombos_edge.records.job import Job, JobStatus
from toombos_edge.records.project import Project, UnknownProject
from toombos_edge.store import Database
from toombos_edge.store.documents import MARK_CLOSE, MARK_OPEN, BadQuery, DocumentStore, TextQuery
from toombos_edge.store.postgres import jobs_sql
from toombos_edge.store.postgres.database import PgDatabase
from toombos_edge.store.postgres.documents import PgDocumentStore
from toombos_edge.store.postgres.projects import PgProjectStore
from toombos_edge.store.projects import ProjectStore
from toombos_edge.store.sqlite.documents import SqliteDocumentStore
from toombos_edge.store.sqlite.projects import SqliteProjectStore

NOW = 1_700_000_000_000


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest) -> tuple[DocumentStore, ProjectStore]:
    """The documents and projects of one database of the backend the id names."""
    if request.param == "sqlite":
        db: Database = request.getfixturevalue("db")
        return SqliteDocumentStore(db), SqliteProjectStore(db)
    pg = request.getfixturevalue("pg_database")
    return PgDocumentStore(pg), PgProjectStore(pg)


@pytest.fixture
def store(backend: tuple[DocumentStore, ProjectStore]) -> DocumentStore:
    return backend[0]


@pytest.fixture
def projects(backend: tuple[DocumentStore, ProjectStore]) -> ProjectStore:
    return backend[1]


def doc(text: str = "some text", *, blob: str | None = None, **fields: Any) -> Document:
    values: dict[str, Any] = {
        "id": new_id("doc"), "title": "A title", "body": text, "format": "text",
        "sha256": text_sha256(text), "size": len(text), "created_at": NOW, "updated_at": NOW,
        "source": Origin.upload if blob else Origin.api, "blob_sha256": blob,
        **fields,
    }
    return Document(**values)


async def test_insert_then_get_gives_the_same_record(store: DocumentStore) -> None:
    made = doc("hello", metadata={"team": "a", "n": [1, 2]}, filename="h.txt")
    await store.insert(made)
    assert await store.get(made.id) == made
    assert await store.get("doc_missing") is None


async def test_an_unknown_project_stores_nothing(
    store: DocumentStore, projects: ProjectStore
) -> None:
    with pytest.raises(UnknownProject):
        await store.insert(doc(project_id="prj_nope"))
    with pytest.raises(UnknownProject):
        await store.insert_unless_stored(doc("other", project_id="prj_nope"))
    assert await store.list_page(source=None, fmt=None, project_id=None, limit=10,
                                 offset=0) == ([], 0)
    await projects.insert(Project("prj_real", "Real", "", {}, NOW, NOW))
    await store.insert(doc(project_id="prj_real"))


async def test_the_same_content_is_stored_once(store: DocumentStore) -> None:
    blob = hashlib.sha256(b"bytes").hexdigest()
    first = await store.insert_unless_stored(doc("from bytes", blob=blob))
    again = await store.insert_unless_stored(doc("from bytes", blob=blob))
    assert (first.duplicate, again.duplicate, again.document) == (False, True, first.document)
    assert await store.find_upload(blob) == first.document

    text = await store.insert_unless_stored(doc("typed"))
    assert (await store.insert_unless_stored(doc("typed"))).document == text.document
    # an empty text stands for nothing; an upload's text is not a text-only document
    assert not (await store.insert_unless_stored(doc(""))).duplicate
    assert not (await store.insert_unless_stored(doc(""))).duplicate
    assert (await store.insert_unless_stored(doc("from bytes"))).duplicate is False


async def test_an_edited_document_no_longer_stands_for_its_blob(store: DocumentStore) -> None:
    blob = hashlib.sha256(b"original").hexdigest()
    first = (await store.insert_unless_stored(doc("original", blob=blob))).document
    edited = await store.update(first.id, DocumentUpdate(text="rewritten"), NOW + 5)
    assert edited is not None and edited.text_edited and edited.size == first.size
    assert await store.find_upload(blob) is None
    second = await store.insert_unless_stored(doc("original", blob=blob))
    assert not second.duplicate and second.document.id != first.id


async def test_update_applies_the_changes_in_one_write(store: DocumentStore) -> None:
    made = doc("one", metadata={"a": 1})
    await store.insert(made)
    changed = await store.update(made.id, DocumentUpdate(text="three", title="T"), NOW + 9)
    assert changed == await store.get(made.id)
    assert changed is not None
    assert (changed.body, changed.sha256, changed.size, changed.title, changed.metadata,
            changed.updated_at, changed.created_at) == (
        "three", text_sha256("three"), 5, "T", {"a": 1}, NOW + 9, NOW)
    assert await store.update("doc_missing", DocumentUpdate(title="x"), NOW) is None
    with pytest.raises(UnknownProject):
        await store.update(made.id, DocumentUpdate(title="lost", project_id="prj_no"), NOW)
    assert await store.get(made.id) == changed


async def test_delete_counts_the_blobs_other_users(store: DocumentStore) -> None:
    blob = hashlib.sha256(b"shared").hexdigest()
    first = (await store.insert_unless_stored(doc("shared", blob=blob))).document
    await store.update(first.id, DocumentUpdate(text="edited"), NOW)
    second = (await store.insert_unless_stored(doc("shared", blob=blob))).document
    text_only = doc("alone")
    await store.insert(text_only)
    assert await store.delete(first.id) == 1
    assert await store.delete(second.id) == 0
    assert await store.delete(text_only.id) == 0
    assert await store.delete(text_only.id) is None
    assert await store.get(second.id) is None


async def test_list_is_newest_first_without_texts(store: DocumentStore) -> None:
    made = [doc(f"text {i}", format="markdown" if i % 2 else "text") for i in range(5)]
    for each in made:
        await store.insert(each)
    page, total = await store.list_page(source=None, fmt=None, project_id=None, limit=2,
                                        offset=1)
    assert ([d.id for d in page], total) == ([made[3].id, made[2].id], 5)
    assert all(d.body == "" and d.sha256 for d in page)
    page, total = await store.list_page(source="api", fmt="markdown", project_id=None,
                                        limit=10, offset=0)
    assert ([d.id for d in page], total) == ([made[3].id, made[1].id], 2)
    assert await store.list_page(source="upload", fmt=None, project_id=None, limit=10,
                                 offset=0) == ([], 0)


async def test_search_ranks_marks_and_refuses_bad_queries(store: DocumentStore) -> None:
    titled = doc("about an otter", title="Otter notes")
    body = doc("the otter swims; the otter dives", title="Rivers")
    await store.insert(body)
    await store.insert(titled)
    await store.insert(doc("nothing here", title="Cooking"))
    matches, total = await store.search(TextQuery("otter"), limit=10, offset=0)
    assert ([m.document.id for m in matches], total) == ([titled.id, body.id], 2)
    assert matches[0].score > matches[1].score
    assert matches[0].title == f"{MARK_OPEN}Otter{MARK_CLOSE} notes"
    assert f"{MARK_OPEN}otter{MARK_CLOSE}" in matches[1].snippet
    assert matches[0].document.body == ""
    assert (await store.search(TextQuery("otter"), limit=1, offset=1))[0][0].document.id \
        == body.id

    with pytest.raises(BadQuery):
        await store.search(TextQuery('"unterminated'), limit=10, offset=0)
    plain, total = await store.search(TextQuery('"swims otter-', plain=True), limit=10,
                                      offset=0)  # the same text, words as written
    assert ([m.document.id for m in plain], total) == ([body.id], 1)
    assert await store.search(TextQuery("otter NOT", plain=True), limit=10, offset=0) \
        == ([], 0)  # NOT is a word to find, not an operator


async def test_uploads_of_unfinished_ingest_jobs_are_in_use(
    client: Client, admin_key: str
) -> None:
    store = SqliteDocumentStore(client.app[DATABASE])
    client.app[ENGINE].pause()
    body = FormData()
    body.add_field("file", io.BytesIO(b"waiting bytes"), filename="w.txt")
    response = await client.post("/api/ingest", headers=auth(admin_key), data=body)
    accepted = await response.json()
    sha, other = hashlib.sha256(b"waiting bytes").hexdigest(), "0" * 64
    assert await store.blobs_in_use([sha, other]) == {sha}
    assert len(await store.live_upload_names()) == 1
    await client.post(f"/api/jobs/{accepted['job_id']}/cancel", headers=auth(admin_key))
    assert await store.blobs_in_use([sha, other]) == set()
    assert await store.live_upload_names() == set()


#: The query language's meaning, on a small corpus: each query and the documents it finds
#: (by index in LANGUAGE_CORPUS), as FTS5 answers them; the other backend must agree.
LANGUAGE_CORPUS = [("", "alpha beta"), ("", "gamma"), ("", "alpha"), ("", "beta gamma"),
                   ("", "alpha gamma"), ("Alpha notes", "delta"), ("", "Café crème")]
LANGUAGE = {
    "alpha": {0, 2, 4, 5},
    "ALPHA beta": {0},
    "alpha beta OR gamma": {0, 1, 3, 4},  # a sequence binds tighter than OR
    "alpha OR beta gamma": {0, 2, 3, 4, 5},
    "alpha NOT beta OR gamma": {1, 2, 3, 4, 5},
    "alpha NOT beta gamma": {0, 2, 4, 5},  # NOT (beta gamma): a sequence binds tighter
    "alpha NOT beta AND gamma": {4},  # (alpha NOT beta) AND gamma
    "(alpha OR beta) AND gamma": {3, 4},
    '"alpha beta"': {0},
    '"beta alpha"': set(),
    '"gamma" alpha': {4},
    "alp*": {0, 2, 4, 5},
    '"alpha be"*': {0},
    "alpha+beta": {0},
    "title:alpha": {5},
    "TITLE : alpha": {5},
    "body:alpha": {0, 2, 4},
    "-title:alpha": {0, 2, 4},
    "{title body}:alpha": {0, 2, 4, 5},
    "title:(alpha OR gamma) OR delta": {5},
    "title:alpha delta": {5},  # the filter holds for the first phrase only
    'alpha ""': {0, 2, 4, 5},  # an empty phrase drops out
    'alpha "-"': {0, 2, 4, 5},
    '""': set(),  # ...and a query of nothing finds nothing
    '"-"': set(),
    "cafe": {6},  # diacritics fold, both ways
    'CAFÉ "creme"': {6},
    "caf*": {6},
    "and": set(),  # lower case: a word, not an operator
    "alpha_beta": {0},  # one word to the eye, two to the tokenizers: a phrase
}
BAD_QUERIES = ["NOT alpha", "alpha AND", "AND", "OR beta", "nocol:alpha", "hello-world",
               "alpha (beta OR gamma)", "alpha OR NOT beta", "a.b", "'x'", "(alpha",
               "alpha)", '"open', "title:", "{title", "*"]


async def test_the_query_language_means_the_same_on_each_backend(store: DocumentStore) -> None:
    made = [doc(body, title=title) for title, body in LANGUAGE_CORPUS]
    for each in made:
        await store.insert(each)
    found = {}
    for query in LANGUAGE:
        matches, total = await store.search(TextQuery(query), limit=10, offset=0)
        found[query] = {made.index(next(d for d in made if d.id == m.document.id))
                        for m in matches}
        assert total == len(matches), query
    assert found == LANGUAGE
    assert await store.search(TextQuery("alpha"), limit=10, offset=10) == ([], 4)
    for query in BAD_QUERIES:
        with pytest.raises(BadQuery):
            await store.search(TextQuery(query), limit=10, offset=0)


async def test_more_matches_rank_higher_and_a_title_above_both(store: DocumentStore) -> None:
    passing = doc("Compost and soil. One otter walked by.", title="Gardening")
    frequent = doc("Otters swim. An otter dives; the otter eats.", title="Rivers")
    titled = doc("Everything about an otter.", title="The otter handbook")
    for each in (passing, frequent, titled, doc("Nothing relevant here.", title="Cooking")):
        await store.insert(each)
    matches, total = await store.search(TextQuery("otter"), limit=10, offset=0)
    assert ([m.document.id for m in matches], total) == ([titled.id, frequent.id, passing.id], 3)
    assert [m.score for m in matches] == sorted((m.score for m in matches), reverse=True)


async def test_snippets_say_where_the_text_was_cut(store: DocumentStore) -> None:
    long = doc(" ".join(["filler"] * 60) + " beacon " + " ".join(["tail"] * 60))
    short = doc("a short beacon")
    await store.insert(long)
    await store.insert(short)
    matches, _ = await store.search(TextQuery("beacon"), limit=10, offset=0)
    snippets = {m.document.id: m.snippet for m in matches}
    cut = snippets[long.id]
    assert cut.startswith("…") and cut.endswith("…") and f"{MARK_OPEN}beacon{MARK_CLOSE}" in cut
    assert 10 <= len(cut.split()) <= 40  # about 24 words around the match
    assert snippets[short.id] == f"a short {MARK_OPEN}beacon{MARK_CLOSE}"


async def test_postgres_refuses_what_a_tsquery_cannot_say(pg_database: PgDatabase) -> None:
    """FTS5's proximity groups and first-word anchor are not in the documented language;
    SQLite happens to accept them, PostgreSQL has no equivalent and says so."""
    store = PgDocumentStore(pg_database)
    for query in ["NEAR(alpha beta)", "^alpha"]:
        with pytest.raises(BadQuery, match="not supported"):
            await store.search(TextQuery(query), limit=10, offset=0)
    assert (await store.search(TextQuery("NEAR alpha"), limit=10, offset=0)) == ([], 0)


async def test_the_same_upload_stored_at_once_is_stored_once(store: DocumentStore) -> None:
    """Several nodes (here: concurrent transactions) ingesting the same bytes at once."""
    blob = hashlib.sha256(b"at once").hexdigest()
    stored = await asyncio.gather(*[
        store.insert_unless_stored(doc("at once", blob=blob)) for _ in range(8)])
    firsts = [s.document for s in stored if not s.duplicate]
    assert len(firsts) == 1
    assert all(s.document == firsts[0] for s in stored)
    texts = await asyncio.gather(*[store.insert_unless_stored(doc("typed")) for _ in range(8)])
    assert len({s.document.id for s in texts}) == 1


async def test_postgres_uploads_of_unfinished_ingest_jobs_are_in_use(
    pg_database: PgDatabase,
) -> None:
    """As test_uploads_of_unfinished_ingest_jobs_are_in_use, with the jobs written by the
    PostgreSQL job SQL (the app does not run on PostgreSQL yet)."""
    store = PgDocumentStore(pg_database)
    sha, other = hashlib.sha256(b"waiting bytes").hexdigest(), "0" * 64
    upload = {"upload": {"sha256": sha, "name": "up_1"}}
    waiting = Job("job_1", "ingest", JobStatus.pending, NOW, NOW, params=upload)
    ended = Job("job_2", "ingest", JobStatus.completed, NOW, NOW,
                params={"upload": {"sha256": other, "name": "up_2"}})
    async with pg_database.transaction() as conn:
        await jobs_sql.insert(conn, [(waiting, NOW), (ended, NOW)], slot=0)
    assert await store.blobs_in_use([sha, other]) == {sha}
    assert await store.live_upload_names() == {"up_1"}
    await pg_database.execute("UPDATE jobs SET status = 'cancelled' WHERE id = 'job_1'")
    assert await store.blobs_in_use([sha, other]) == set()
    assert await store.live_upload_names() == set()


async def test_random_queries_find_the_same_on_both_backends(
    db: Database, pg_database: PgDatabase,
) -> None:
    """The two translations of the language, against each other: random queries over a
    random corpus are refused by both or find the same documents on both (seeded: the
    same queries every run). ``^`` and ``NEAR`` are left out (PostgreSQL refuses them)."""
    sqlite, postgres = SqliteDocumentStore(db), PgDocumentStore(pg_database)
    rnd = random.Random(7)
    words = ["a", "b", "é", "e", "c", "ab", "abc"]
    for _ in range(40):
        made = doc(" ".join(rnd.choices(words, k=rnd.randint(0, 5))),
                   title=" ".join(rnd.choices(words, k=rnd.randint(0, 2))))
        await sqlite.insert(made)
        await postgres.insert(made)
    pieces = [*words, *words, '"', '""', "*", "+", ":", "(", ")", "{", "}", "-", "AND", "OR",
              "NOT", "title", "body"]
    found = 0
    for _ in range(300):
        query = TextQuery(" ".join(rnd.choices(pieces, k=rnd.randint(1, 7))))
        answers = []
        for store in (sqlite, postgres):
            try:
                matches, total = await store.search(query, limit=100, offset=0)
                answers.append(({m.document.id for m in matches}, total))
            except BadQuery:
                answers.append(None)
        assert answers[0] == answers[1], query
        found += answers[0] is not None and answers[0][1] > 0
    assert found > 40  # the queries are not all refused or empty
