from __future__ import annotations

import pytest
from conftest import Client, auth

from toombos_edge.appkeys import BUS, DOCUMENTS, SEARCH
from toombos_edge.events import QUERY_COMPLETE, Event
from toombos_edge.store.sqlite.documents import plain_query

pytestmark = pytest.mark.backends


async def add(client: Client, title: str, text: str) -> str:
    doc = await client.app[DOCUMENTS].create(title=title, text=text, fmt="text", metadata={})
    return doc.id


async def search(client: Client, key: str, query: str) -> dict[str, object]:
    response = await client.get("/api/search", params={"q": query}, headers=auth(key))
    assert response.status == 200, await response.text()
    return dict(await response.json())


async def test_ranking_prefers_title_and_frequency(client: Client, admin_key: str) -> None:
    passing = await add(client, "Gardening", "Compost and soil. One otter walked by.")
    frequent = await add(client, "Rivers", "Otters swim. An otter dives; the otter eats.")
    titled = await add(client, "The otter handbook", "Everything about an otter.")
    await add(client, "Cooking", "Nothing relevant here.")
    body = await search(client, admin_key, "otter")
    assert [hit["id"] for hit in body["results"]] == [titled, frequent, passing]  # type: ignore[index]
    assert body["total"] == 3
    scores = [hit["score"] for hit in body["results"]]  # type: ignore[index]
    assert scores == sorted(scores, reverse=True)


async def test_snippets_highlight_and_escape(client: Client, admin_key: str) -> None:
    long_text = " ".join(["filler"] * 100) + " <script>alert(1)</script> beacon found " + \
        " ".join(["tail"] * 100)
    await add(client, "Signal <b>fires</b>", long_text)
    hit = (await search(client, admin_key, "beacon"))["results"][0]  # type: ignore[index]
    assert "<mark>beacon</mark>" in hit["snippet"]
    assert "&lt;script&gt;" in hit["snippet"] and "<script>" not in hit["snippet"]
    assert hit["snippet"].startswith("…") and hit["snippet"].endswith("…")
    assert len(hit["snippet"]) < 400
    assert hit["title_highlighted"] == "Signal &lt;b&gt;fires&lt;/b&gt;"
    assert "text" not in hit


async def test_fts_syntax_works(client: Client, admin_key: str) -> None:
    both = await add(client, "a", "alpha beta gamma")
    alpha = await add(client, "b", "alpha delta")
    assert [h["id"] for h in (await search(client, admin_key, "alpha NOT beta"))["results"]] \
        == [alpha]  # type: ignore[index]
    assert [h["id"] for h in (await search(client, admin_key, '"beta gamma"'))["results"]] \
        == [both]  # type: ignore[index]
    assert (await search(client, admin_key, "gam*"))["total"] == 1
    assert (await search(client, admin_key, "title:b"))["total"] == 1


async def test_bad_syntax_is_a_422_saying_why(client: Client, admin_key: str) -> None:
    await add(client, "x", "hello world")
    for query in ['"unterminated', "AND", "hello-world", "nocol:word", "(a OR"]:
        response = await client.get("/api/search", params={"q": query},
                                    headers=auth(admin_key))
        assert response.status == 422, query
        body = await response.json()
        assert body["detail"].startswith("bad search syntax"), body
        assert "mode=plain" in body["error"]["details"]["hint"]
    plain = await client.get("/api/search", params={"q": "hello-world", "mode": "plain"},
                             headers=auth(admin_key))
    assert (await plain.json())["total"] == 1


async def test_index_follows_updates_and_deletes(client: Client, admin_key: str) -> None:
    docs = client.app[DOCUMENTS]
    doc_id = await add(client, "t", "walrus")
    await docs.update(doc_id, text="narwhal", title="sea")
    assert (await search(client, admin_key, "walrus"))["total"] == 0
    assert (await search(client, admin_key, "narwhal AND sea"))["total"] == 1
    await docs.delete(doc_id)
    assert (await search(client, admin_key, "narwhal"))["total"] == 0


async def test_each_search_publishes_query_complete(client: Client, admin_key: str) -> None:
    events: list[Event] = []
    client.app[BUS].subscribe(events.append)
    await add(client, "t", "kiwi")
    await search(client, admin_key, "kiwi")
    await client.app[SEARCH].search("kiwi OR " + "x" * 200)
    done = [e.body["data"] for e in events if e.type == QUERY_COMPLETE]
    assert [(d["query"], d["hits"], d["truncated"]) for d in done] == [
        ("kiwi", 1, False), (("kiwi OR " + "x" * 200)[:100], 1, True)]
    assert all(d["latency_ms"] >= 0 for d in done)


async def test_empty_query_and_bad_params(client: Client, admin_key: str) -> None:
    for params in [{"q": "  "}, {}, {"q": "a", "mode": "regex"}, {"q": "a", "limit": "500"}]:
        response = await client.get("/api/search", params=params, headers=auth(admin_key))
        assert response.status == 422, params


def test_plain_query_quotes_everything() -> None:
    assert plain_query('say "hi" NOT-now') == '"say" """hi""" "NOT-now"'
