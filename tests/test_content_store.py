"""Content items and versions: every update keeps the prior body; rollback restores it.

On each backend: SQLite over a real file, PostgreSQL on a real server (the fixture's
parameter names it in the test id)."""

from __future__ import annotations

import asyncio

import pytest

from toombos_edge.errors import Conflict, NotFound
from toombos_edge.records.content import ContentItem, new_item
from toombos_edge.store import Database
from toombos_edge.store.postgres.content import PgContentStore
from toombos_edge.store.sqlite.content import SqliteContentStore

#: The protocol, and ``add`` (one item) that both implementations have for tools and tests.
Store = SqliteContentStore | PgContentStore


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest) -> Store:
    if request.param == "sqlite":
        db: Database = request.getfixturevalue("db")
        return SqliteContentStore(db)
    return PgContentStore(request.getfixturevalue("pg_database"))


def _item(subject: str, job_id: str = "job_1") -> ContentItem:
    return new_item("email", {"subject": subject, "text": "t"}, job_id=job_id,
                    document_id="doc_1", style="modern", tone="casual", content_type="update")


async def test_updates_keep_every_prior_version(store: Store) -> None:
    item = await store.add(_item("first"))
    await store.update(item.id, {"subject": "second", "text": "t"})
    third = await store.update(item.id, {"subject": "third", "text": "t"}, expected_version=2)
    assert third.version == 3 and third.body["subject"] == "third"
    versions = await store.versions(item.id)
    assert [(v.version, v.body["subject"], v.current) for v in versions] == [
        (3, "third", True), (2, "second", False), (1, "first", False)]


async def test_an_update_merges_its_fields_into_the_body_it_replaces(store: Store) -> None:
    item = await store.add(_item("first"))  # {"subject": "first", "text": "t"}
    await asyncio.gather(store.update(item.id, {"subject": "second"}),
                         store.update(item.id, {"title": "T"}))
    current = await store.get(item.id)
    assert (current.version, current.body) == (3, {"subject": "second", "text": "t",
                                                   "title": "T"})


async def test_a_stale_update_is_refused(store: Store) -> None:
    item = await store.add(_item("first"))
    await store.update(item.id, {"subject": "second"})
    with pytest.raises(Conflict):
        await store.update(item.id, {"subject": "lost"}, expected_version=1)
    assert (await store.get(item.id)).body["subject"] == "second"


async def test_rollback_restores_the_previous_body_as_a_new_version(
    store: Store,
) -> None:
    item = await store.add(_item("good"))
    await store.update(item.id, {"subject": "broken"})
    rolled = await store.rollback(item.id)
    assert (rolled.version, rolled.body["subject"]) == (3, "good")
    back = await store.rollback(item.id, to_version=2)
    assert back.body["subject"] == "broken" and back.version == 4
    assert len(await store.versions(item.id)) == 4  # nothing was lost


async def test_rollback_without_history_and_unknown_items(store: Store) -> None:
    item = await store.add(_item("only"))
    with pytest.raises(Conflict):
        await store.rollback(item.id)
    with pytest.raises(Conflict):
        await store.rollback(item.id, to_version=7)
    with pytest.raises(NotFound):
        await store.rollback("cnt_missing")


async def test_delete_removes_versions_and_pages(store: Store) -> None:
    page = await store.add(new_item("website", {"slug": "hello", "html": "<p>hi</p>"},
                                    job_id=None, document_id=None, style="modern",
                                    tone="casual", content_type="blog"))
    assert await store.page("hello") is None  # drafts are not served
    await store.mark_published(page.id, "http://x/site/hello", 1)
    assert (await store.page("hello")).id == page.id  # type: ignore[union-attr]
    await store.count_view("hello", "2026-12-06")
    await store.count_view("hello", "2026-12-06")
    assert sum((await store.views("hello")).values()) == 2
    await store.delete(page.id)
    assert await store.page("hello") is None
    with pytest.raises(NotFound):
        await store.versions(page.id)


async def test_concurrent_updates_and_views_are_all_kept(store: Store) -> None:
    """Several nodes (here: concurrent transactions) changing one item and counting one page."""
    item = await store.add(_item("v1"))
    await asyncio.gather(*[store.update(item.id, {"subject": f"u{i}"}) for i in range(6)])
    versions = await store.versions(item.id)
    assert [v.version for v in versions] == [7, 6, 5, 4, 3, 2, 1]
    assert sorted(v.body["subject"] for v in versions) == sorted(
        ["v1"] + [f"u{i}" for i in range(6)])
    await asyncio.gather(*[store.count_view("p", "2026-12-06") for _ in range(20)])
    assert await store.views("p") == {"2026-12-06": 20}
