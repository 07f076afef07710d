from __future__ import annotations

import asyncio
import hashlib
import time
from pathlib import Path

import pytest
from support import eventually_async

from toombos_edge.documents.blobs import BlobStore, hash_file


def staged(tmp_path: Path, name: str, data: bytes) -> tuple[Path, str]:
    path = tmp_path / name
    path.write_bytes(data)
    return path, hashlib.sha256(data).hexdigest()


def test_blobs_live_under_their_hash(tmp_path: Path) -> None:
    store = BlobStore(tmp_path / "blobs")
    source, sha = staged(tmp_path, "a", b"content")
    assert store.adopt(source, sha) is True
    assert store.path(sha) == tmp_path / "blobs" / sha[:2] / sha[2:4] / sha
    assert not source.exists()
    assert hash_file(store.path(sha)) == sha


def test_same_content_is_stored_once(tmp_path: Path) -> None:
    store = BlobStore(tmp_path / "blobs")
    first, sha = staged(tmp_path, "a", b"same bytes")
    second, _ = staged(tmp_path, "b", b"same bytes")
    assert store.adopt(first, sha) is True
    assert store.adopt(second, sha) is False
    assert not second.exists()
    assert [p.name for p in (tmp_path / "blobs").rglob("*") if p.is_file()] == [sha]
    assert (store.adopted, store.deduplicated) == (1, 1)


def test_remove(tmp_path: Path) -> None:
    store = BlobStore(tmp_path / "blobs")
    source, sha = staged(tmp_path, "a", b"x")
    store.adopt(source, sha)
    assert store.remove(sha) is True
    assert store.remove(sha) is False
    assert not store.exists(sha)


def test_only_hashes_make_paths(tmp_path: Path) -> None:
    store = BlobStore(tmp_path / "blobs")
    for bad in ("../../etc/passwd", "AB" * 32, "a" * 63, ""):
        with pytest.raises(ValueError, match="SHA-256"):
            store.path(bad)


def files(root: Path) -> list[str]:
    return sorted(p.name for p in root.rglob("*") if p.is_file())


async def test_a_drop_asks_again_with_the_file_set_aside(tmp_path: Path) -> None:
    """While the question is asked the blob is not under its name (an ingest that looks
    for it now stores its own copy); the answer removes the file or puts it back."""
    store = BlobStore(tmp_path / "blobs")
    source, sha = staged(tmp_path, "a", b"bytes")
    store.adopt(source, sha)
    seen: list[bool] = []

    async def still_used() -> bool:
        seen.append(store.exists(sha))
        return False

    async def unused() -> bool:
        seen.append(store.exists(sha))
        return True

    assert await store.drop(sha, still_used) is False
    assert store.exists(sha) and files(tmp_path / "blobs") == [sha]
    assert await store.drop(sha, unused) is True
    assert files(tmp_path / "blobs") == [] and store.removed == 1
    assert seen == [False, False]  # set aside both times
    assert await store.drop(sha, unused) is False  # nothing left to drop


async def test_a_start_puts_back_a_blob_a_crash_left_set_aside(tmp_path: Path) -> None:
    store = BlobStore(tmp_path / "blobs")
    one, kept = staged(tmp_path, "a", b"one")
    two, copied = staged(tmp_path, "b", b"two")
    store.adopt(one, kept)
    store.adopt(two, copied)
    assert store.set_aside(kept) is not None  # the process dies here
    aside = store.set_aside(copied)
    assert aside is not None
    again, _ = staged(tmp_path, "c", b"two")
    store.adopt(again, copied)  # an ingest stored its own copy meanwhile
    assert await store.recover() == 2
    assert files(tmp_path / "blobs") == sorted([kept, copied])
    assert store.path(kept).read_bytes() == b"one" and store.path(copied).read_bytes() == b"two"


async def test_a_drop_whose_question_fails_or_is_cancelled_keeps_the_blob(
    tmp_path: Path,
) -> None:
    store = BlobStore(tmp_path / "blobs")
    source, sha = staged(tmp_path, "a", b"bytes")
    store.adopt(source, sha)

    async def database_down() -> bool:
        raise ConnectionError("the database did not answer")

    with pytest.raises(ConnectionError):
        await store.drop(sha, database_down)
    assert files(tmp_path / "blobs") == [sha]

    asking, answer = asyncio.Event(), asyncio.Event()

    async def slow_answer() -> bool:
        asking.set()
        await answer.wait()
        return False  # still used

    dropping = asyncio.create_task(store.drop(sha, slow_answer))
    await asking.wait()
    dropping.cancel()  # the caller goes (a stop); the drop finishes what it began
    answer.set()
    with pytest.raises(asyncio.CancelledError):
        await dropping
    await eventually_async(lambda: store.exists(sha), 5, "the blob to be put back")
    assert files(tmp_path / "blobs") == [sha]


async def test_a_sweep_puts_back_only_what_was_left_aside_before_its_grace(
    tmp_path: Path,
) -> None:
    """A node that died mid-drop and never restarts: a sweep puts the file back once it
    has been aside longer than the sweep's grace; one set aside within it (a drop in
    flight) is left to its drop."""
    store = BlobStore(tmp_path / "blobs")
    source, sha = staged(tmp_path, "a", b"bytes")
    store.adopt(source, sha)
    assert store.set_aside(sha) is not None
    assert await store.recover(before=time.time() - 3600) == 0  # aside for less than that
    assert not store.exists(sha)
    assert await store.recover(before=time.time() + 1) == 1
    assert files(tmp_path / "blobs") == [sha]
