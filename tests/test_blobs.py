from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

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
