"""Zip bombs shaped like a DOCX and an XLSX, sent through POST /api/ingest: each upload is
kept as a document without text, with the reason, and the job never inflates the bomb."""

from __future__ import annotations

import hashlib
import io
import re
import time
import tracemalloc
import zipfile
from pathlib import Path
from typing import Any

import pytest
from conftest import Client, ClientFactory, auth
from office_samples import make_docx, make_xlsx
from test_ingest_api import form, ingest
from zip_bombs import MIB, Deflated, bomb_archive, deflated_spaces

from toombos_edge.appkeys import DOCUMENTS, INGESTOR
from toombos_edge.documents.archives import ArchiveLimits, ArchiveRefused, stored_copy

GIB = 1024  # MiB

DOCX_HEAD = (b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?><w:document xmlns:w='
             b'"http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body><w:p>'
             b"<w:r><w:t>")
DOCX_TAIL = b"</w:t></w:r></w:p></w:body></w:document>"
XLSX_HEAD = (b'<?xml version="1.0" encoding="UTF-8"?><worksheet xmlns="http://schemas.'
             b'openxmlformats.org/spreadsheetml/2006/main"><sheetData><row r="1"><c r="A1" '
             b't="inlineStr"><is><t>')
XLSX_TAIL = b"</t></is></c></row></sheetData></worksheet>"


@pytest.fixture(scope="module")
def docx_bomb() -> Deflated:
    return deflated_spaces(DOCX_HEAD, GIB, DOCX_TAIL)


@pytest.fixture(scope="module")
def xlsx_bomb() -> Deflated:
    return deflated_spaces(XLSX_HEAD, GIB, XLSX_TAIL)


def shaped(kind: str, bomb: Deflated, lie: bool) -> bytes:
    if kind == "docx":
        return bomb_archive(make_docx(["cover"]), "word/document.xml", bomb, lie=lie)
    return bomb_archive(make_xlsx({"Sheet": [["cover"]]}), "xl/worksheets/sheet1.xml", bomb,
                        lie=lie)


def test_the_bombs_are_real(docx_bomb: Deflated) -> None:
    """A gigabyte in a megabyte, inside a well-formed DOCX that zipfile opens."""
    data = shaped("docx", docx_bomb, lie=False)
    assert len(data) < 1.2 * MIB and docx_bomb.size > GIB * MIB
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        info = archive.getinfo("word/document.xml")
        assert (info.file_size, info.CRC) == (docx_bomb.size, docx_bomb.crc)
        with archive.open(info) as member:
            start = member.read(len(DOCX_HEAD) + 8 * MIB)
    assert start == DOCX_HEAD + b" " * 8 * MIB
    assert "[Content_Types].xml" in archive.namelist()


async def ingest_measured(client: Client, key: str, data: bytes,
                          name: str) -> tuple[dict[str, Any], float, int]:
    """The finished job, the CPU seconds the process spent on it, its peak Python memory."""
    tracemalloc.start()
    began = time.process_time()
    try:
        job = await ingest(client, key, data=form(data, name))
        cpu = time.process_time() - began
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return job, cpu, peak


@pytest.fixture
async def in_process(make_client: ClientFactory) -> Client:
    """The app reading files in its own threads (TOOMBOS_EXTRACT_PROCESSES=0), so that this
    process's CPU time and memory measure the reading: in a worker process they would not."""
    client = await make_client(extract_processes=0)
    assert client.app[INGESTOR].readers.processes == 0
    return client


@pytest.mark.parametrize("kind", ["docx", "xlsx"])
@pytest.mark.parametrize(("lie", "reason"), [
    (False, r"inflates 1,0\d\d times its size, over the limit of 500 "
            r"\(TOOMBOS_ARCHIVE_MAX_RATIO\)"),
    (True, r"inflates past the 4,\d+ bytes its header declares"),
], ids=["honest-header", "lying-header"])
async def test_a_bomb_is_kept_without_text_at_once(
    in_process: Client, tmp_path: Path, request: pytest.FixtureRequest, kind: str, lie: bool,
    reason: str,
) -> None:
    client, admin_key = in_process, (tmp_path / "data" / "admin.key").read_text().strip()
    data = shaped(kind, request.getfixturevalue(f"{kind}_bomb"), lie)
    job, cpu, peak = await ingest_measured(client, admin_key, data, f"report.{kind}")
    assert job["status"] == "completed", job
    output = job["output"]
    assert (output["format"], output["text_extracted"]) == (kind, False)
    assert re.search(reason, output["no_text_reason"]), output
    assert cpu < 1.0, f"{cpu:.2f} s of CPU"  # inflating the gigabyte takes more than that
    assert peak < 48 * MIB, f"{peak / MIB:.0f} MiB at peak"
    docs = client.app[DOCUMENTS]
    doc = await docs.get(job["document_id"])
    assert (doc.body, doc.blob_sha256) == ("", hashlib.sha256(data).hexdigest())
    assert doc.title == "report"
    assert list(docs.uploads.root.iterdir()) == []  # no checked copy left behind
    kept = await client.get(f"/api/documents/{doc.id}/file", headers=auth(admin_key))
    assert await kept.read() == data


async def test_past_the_size_limit_when_the_ratio_is_allowed(
    make_client: ClientFactory, tmp_path: Path, docx_bomb: Deflated
) -> None:
    client = await make_client(archive_max_ratio=5000, archive_max_mb=64, extract_processes=0)
    key = (tmp_path / "data" / "admin.key").read_text().strip()
    job, cpu, _peak = await ingest_measured(client, key, shaped("docx", docx_bomb, False),
                                            "big.docx")
    assert re.fullmatch(r"the archive inflates to 1,07\d,\d{3},\d{3} bytes, over the limit of "
                        r"67,108,864 \(TOOMBOS_ARCHIVE_MAX_MB\)", job["output"]["no_text_reason"])
    assert job["output"]["text_extracted"] is False and cpu < 1.0


def write_zip(path: Path, members: dict[str, bytes], method: int = zipfile.ZIP_DEFLATED) -> None:
    with zipfile.ZipFile(path, "w", method) as archive:
        for name, data in members.items():
            archive.writestr(name, data)


def test_the_stored_copy_holds_every_member_unchanged(tmp_path: Path) -> None:
    source = tmp_path / "doc.docx"
    source.write_bytes(make_docx(["kept as it was"], title="Same"))
    with zipfile.ZipFile(source) as original:
        expected = {info.filename: original.read(info) for info in original.infolist()}
    with stored_copy(source, ArchiveLimits(scratch=tmp_path)) as copy:
        assert copy.parent == tmp_path and copy.name.endswith(".part")
        with zipfile.ZipFile(copy) as stored:
            assert {i.compress_type for i in stored.infolist()} == {zipfile.ZIP_STORED}
            assert {i.filename: stored.read(i) for i in stored.infolist()} == expected
    assert sorted(tmp_path.iterdir()) == [source]


def test_other_compression_methods_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "lzma.docx"
    write_zip(path, {"word/document.xml": b"<w/>" * 1000}, zipfile.ZIP_LZMA)
    with pytest.raises(ArchiveRefused, match="compression method 14"), stored_copy(
        path, ArchiveLimits(scratch=tmp_path)
    ):
        pass
    assert sorted(tmp_path.iterdir()) == [path]


def test_overlapping_members_are_refused(tmp_path: Path) -> None:
    """Many directory entries pointing at one compressed block: the non-recursive bomb."""
    path = tmp_path / "overlap.zip"
    write_zip(path, {"aaa.xml": b"<a>" + b" " * 1_000_000 + b"</a>"})
    data = path.read_bytes()
    with zipfile.ZipFile(path) as archive:
        info = archive.infolist()[0]
    directory_at = data.index(b"PK\x01\x02")
    entry = data[directory_at:data.index(b"PK\x05\x06")]
    copies = [entry.replace(b"aaa.xml", f"{i:03d}.xml".encode()) for i in range(200)]
    assert all(len(c) == len(entry) for c in copies) and info.compress_size > 100
    end = (b"PK\x05\x06" + b"\x00" * 4 + len(copies).to_bytes(2, "little") * 2 +
           (len(entry) * len(copies)).to_bytes(4, "little") + directory_at.to_bytes(4, "little")
           + b"\x00\x00")
    path.write_bytes(data[:directory_at] + b"".join(copies) + end)
    with pytest.raises(ArchiveRefused, match="overlap"), stored_copy(
        path, ArchiveLimits(scratch=tmp_path)
    ):
        pass


def test_a_file_that_is_not_a_zip_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "fake.docx"
    path.write_bytes(b"PK\x03\x04 but nothing else")
    with pytest.raises(Exception, match="corrupt zip archive"), stored_copy(
        path, ArchiveLimits(scratch=tmp_path)
    ):
        pass


def test_a_member_that_fails_its_crc_is_corrupt(tmp_path: Path) -> None:
    path = tmp_path / "crc.docx"
    write_zip(path, {"word/document.xml": b"<w:document/>" * 100})
    data = bytearray(path.read_bytes())
    entry = data.index(b"PK\x01\x02")
    data[entry + 16:entry + 20] = b"\x00\x00\x00\x00"  # the directory's CRC-32
    path.write_bytes(bytes(data))
    with pytest.raises(Exception, match="does not match its size or CRC-32"), stored_copy(
        path, ArchiveLimits(scratch=tmp_path)
    ):
        pass


async def test_in_a_worker_process_too(client: Client, admin_key: str,
                                       xlsx_bomb: Deflated) -> None:
    """The default: a reader process refuses it the same way."""
    assert client.app[INGESTOR].readers.processes > 0
    job = await ingest(client, admin_key, data=form(shaped("xlsx", xlsx_bomb, True), "b.xlsx"))
    assert (job["status"], job["output"]["text_extracted"]) == ("completed", False)
    assert "inflates past" in job["output"]["no_text_reason"]
