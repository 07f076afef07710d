"""Zip-based documents (DOCX, PPTX, XLSX, ODF, EPUB) opened within limits: no zip bomb.

Two checks. Before anything is inflated, the central directory: only stored or deflated
members (all that OOXML, ODF and EPUB allow), none encrypted, at most ``MAX_MEMBERS``, each
member's data inside the file and the compressed sizes adding up to no more than the file
(overlapping members are how a small file claims gigabytes), the declared sizes adding up
to at most ``max_bytes``, and no member past ``max_ratio`` times its compressed size once it
declares more than ``GRACE_BYTES``. Deflate cannot pass about 1032:1, and a one-layer bomb
sits near that; documents stay below, though repetitive XML goes far (a DOCX of one line
repeated 8,000 times has a document.xml at 229:1, and Apache POI's users meet its limit of
100 with generated reports). So the default is 500, and what bounds memory is the total.

Then, while reading: each member is inflated in ``CHUNK`` steps into a stored copy, asking
for one byte more than its header declares; getting it means the header lied, and the
extraction stops. So no step inflates more than ``CHUNK`` bytes at once, no member more
than it declared, and the whole no more than ``max_bytes``, whatever the headers say.

The format libraries (python-docx, openpyxl, odfpy, …) are handed that stored copy: they
never inflate anything themselves, whatever they do with the file. The copy is written to a
scratch folder (the uploads folder, whose ``*.part`` files are swept at start) and removed
when the reader is done.
"""

from __future__ import annotations

import contextlib
import copy
import os
import tempfile
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from .extracted import ExtractionError

CHUNK = 1 << 16
GRACE_BYTES = 1 << 20
MAX_MEMBERS = 20_000
_LOCAL_HEADER = 30  #: fixed part of a member's local header, before its name and extra field
_ENCRYPTED = 0x1
_METHODS = {zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED}


class ArchiveRefused(ExtractionError):
    """The archive passes a limit or breaks the zip format in a way only an attack would."""


@dataclass(frozen=True, slots=True)
class ArchiveLimits:
    max_bytes: int = 256 << 20  #: all members inflated, together
    max_ratio: float = 500.0  #: inflated over compressed size, per member past the grace
    scratch: Path | None = None  #: where the stored copy goes (None: the system's temp dir)


def check_directory(archive: zipfile.ZipFile, file_size: int, limits: ArchiveLimits) -> None:
    """The central directory's promises, checked before a byte is inflated."""
    members = archive.infolist()
    if len(members) > MAX_MEMBERS:
        raise ArchiveRefused(f"the archive has {len(members):,} members (at most {MAX_MEMBERS:,})")
    declared = compressed = 0
    for info in members:
        _check_member(info, file_size, limits)
        declared += info.file_size
        compressed += info.compress_size
    if compressed > file_size:
        raise ArchiveRefused("the archive's members overlap (their compressed sizes add up "
                             "to more than the file)")
    if declared > limits.max_bytes:
        raise ArchiveRefused(
            f"the archive inflates to {declared:,} bytes, over the limit of "
            f"{limits.max_bytes:,} (TOOMBOS_ARCHIVE_MAX_MB)")


def _check_member(info: zipfile.ZipInfo, file_size: int, limits: ArchiveLimits) -> None:
    name = info.filename
    if info.compress_type not in _METHODS:
        raise ArchiveRefused(f"member {name!r} uses compression method {info.compress_type}; "
                             "only stored and deflated are allowed")
    if info.flag_bits & _ENCRYPTED:
        raise ExtractionError(f"member {name!r} is encrypted")
    if info.header_offset + _LOCAL_HEADER + info.compress_size > file_size:
        raise ArchiveRefused(f"member {name!r} claims data past the end of the file")
    if info.file_size > GRACE_BYTES and info.file_size > limits.max_ratio * max(
        info.compress_size, 1
    ):
        raise ArchiveRefused(
            f"member {name!r} inflates {info.file_size / max(info.compress_size, 1):,.0f} "
            f"times its size, over the limit of {limits.max_ratio:g} (TOOMBOS_ARCHIVE_MAX_RATIO)")


@contextlib.contextmanager
def stored_copy(path: Path, limits: ArchiveLimits) -> Iterator[Path]:
    """A checked copy of the archive at ``path`` with every member stored (blocking).

    ``ArchiveRefused`` when a limit is passed or a header lies; ``ExtractionError`` when
    the file is not a readable zip archive.
    """
    fd, name = tempfile.mkstemp(prefix="unzip-", suffix=".part", dir=limits.scratch)
    target = Path(name)
    try:
        with os.fdopen(fd, "wb") as sink:
            _copy(path, sink, limits)
        yield target
    finally:
        target.unlink(missing_ok=True)


def _copy(path: Path, sink: BinaryIO, limits: ArchiveLimits) -> None:
    try:
        with zipfile.ZipFile(path) as source, zipfile.ZipFile(
            sink, "w", zipfile.ZIP_STORED
        ) as out:
            check_directory(source, path.stat().st_size, limits)
            for info in source.infolist():
                if not info.is_dir():
                    _copy_member(source, info, out)
    except ExtractionError:
        raise
    except (zipfile.BadZipFile, zlib.error, EOFError, ValueError, NotImplementedError,
            RuntimeError, OSError) as exc:
        raise ExtractionError(f"corrupt zip archive: {exc}") from None


def _copy_member(source: zipfile.ZipFile, info: zipfile.ZipInfo, out: zipfile.ZipFile) -> None:
    # Ask for one byte more than declared (a lie shows as that byte), and check the CRC
    # here: zipfile would check it on that byte and hide the lie behind a CRC error.
    probe = copy.copy(info)
    probe.file_size = info.file_size + 1
    del probe.CRC
    stored = zipfile.ZipInfo(info.filename, info.date_time)
    written, crc = 0, 0
    with source.open(probe) as member, out.open(
        stored, "w", force_zip64=info.file_size >= zipfile.ZIP64_LIMIT
    ) as target:
        while chunk := member.read(CHUNK):
            written += len(chunk)
            if written > info.file_size:
                raise ArchiveRefused(
                    f"member {info.filename!r} inflates past the {info.file_size:,} bytes "
                    "its header declares")
            crc = zlib.crc32(chunk, crc)
            target.write(chunk)
    if written != info.file_size or crc != info.CRC:
        raise ExtractionError(f"corrupt zip archive: member {info.filename!r} does not match "
                              "its size or CRC-32")
