from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from toombos_edge.documents.uploads import Upload, UploadFolder, safe_filename
from toombos_edge.errors import Invalid, PayloadTooLarge


@pytest.mark.parametrize(("raw", "safe"), [
    ("report.pdf", "report.pdf"),
    ("../../etc/passwd", "passwd"),
    ("/etc/shadow", "shadow"),
    ("C:\\Windows\\system32\\cmd.exe", "cmd.exe"),
    ("..", "upload"),
    ("../", "upload"),
    ("", "upload"),
    (None, "upload"),
    ("...hidden", "hidden"),
    ("na\x00me\x1b[31m.txt", "name[31m.txt"),
    ("new\r\nline\t.txt", "newline.txt"),
    ("  many   spaces .txt ", "many spaces .txt"),
    ("résumé ÿ final.md", "résumé ÿ final.md"),
    ("\u202egnp.exe", "gnp.exe"),  # right-to-left override (a format character)
    ("a" * 500, "a" * 200),
])
def test_safe_filename(raw: str | None, safe: str) -> None:
    assert safe_filename(raw) == safe


async def test_stream_hashes_and_names_the_upload(tmp_path: Path) -> None:
    folder = UploadFolder(tmp_path / "uploads")
    folder.prepare()
    sink = folder.sink(10 << 20, "data.bin", "application/octet-stream")
    chunks = [os.urandom(300_000) for _ in range(10)]  # several flushes of 1 MiB
    for chunk in chunks:
        await sink.write(chunk)
    upload = await sink.finish()
    data = b"".join(chunks)
    assert (upload.size, upload.sha256) == (len(data), hashlib.sha256(data).hexdigest())
    assert folder.path(upload.name).read_bytes() == data
    assert [p.name for p in folder.root.iterdir()] == [upload.name]
    assert Upload.from_json(upload.to_json()) == upload


async def test_empty_upload(tmp_path: Path) -> None:
    folder = UploadFolder(tmp_path / "uploads")
    folder.prepare()
    upload = await folder.sink(100, "empty.txt", "text/plain").finish()
    assert (upload.size, upload.sha256) == (0, hashlib.sha256(b"").hexdigest())
    assert folder.path(upload.name).read_bytes() == b""


async def test_past_the_limit_stops_and_leaves_nothing(tmp_path: Path) -> None:
    folder = UploadFolder(tmp_path / "uploads")
    folder.prepare()
    sink = folder.sink(2 << 20, "big.bin", "application/octet-stream")
    with pytest.raises(PayloadTooLarge, match="limit of 2 MiB"):
        for _ in range(10):
            await sink.write(b"x" * 700_000)
    await sink.abort()
    assert list(folder.root.iterdir()) == []


async def test_prepare_sweeps_partial_uploads_only(tmp_path: Path) -> None:
    folder = UploadFolder(tmp_path / "uploads")
    folder.prepare()
    sink = folder.sink(10 << 20, "a", "text/plain")
    await sink.write(b"y" * (2 << 20))
    await sink.abort()
    (folder.root / "up_crashed.part").write_bytes(b"left by a crash mid-upload")
    done = await folder.sink(100, "b", "text/plain").finish()
    assert folder.prepare() == 1
    assert [p.name for p in folder.root.iterdir()] == [done.name]


def test_upload_params_are_checked() -> None:
    good = {"name": "up_" + "0" * 32, "sha256": "a" * 64, "size": 1, "filename": "../x",
            "content_type": "text/plain"}
    assert Upload.from_json(good).filename == "x"
    with pytest.raises(Invalid, match="not an upload of this server"):
        Upload.from_json({**good, "name": "../../edge.db"})
    with pytest.raises(Invalid, match="needs name"):
        Upload.from_json({"name": good["name"]})
