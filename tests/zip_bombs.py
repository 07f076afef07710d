"""Real decompression bombs shaped like Office documents, made in a fraction of a second.

A deflate stream of a megabyte of spaces, flushed with Z_FULL_FLUSH, is the same bytes each
time (the flush resets the compressor's state), so a stream of N MiB is that block
repeated: ~1 KB per MiB, ratio ~1000:1, and no need to compress the gigabyte it inflates
to. The zip around it is written by hand, so that its headers can tell the truth about the
member's size, or lie.
"""

from __future__ import annotations

import io
import struct
import zipfile
import zlib
from dataclasses import dataclass

MIB = 1 << 20


@dataclass(frozen=True)
class Deflated:
    stream: bytes  #: raw deflate data
    size: int  #: what it inflates to
    crc: int  #: CRC-32 of what it inflates to
    prefix_crc: int  #: CRC-32 of its first ``prefix_size`` bytes (for a lying header)
    prefix_size: int


def deflated_spaces(head: bytes, mib: int, tail: bytes) -> Deflated:
    """``head``, then ``mib`` MiB of spaces, then ``tail``, as one raw deflate stream."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    unit = b" " * MIB
    start = compressor.compress(head) + compressor.flush(zlib.Z_FULL_FLUSH)
    block = compressor.compress(unit) + compressor.flush(zlib.Z_FULL_FLUSH)
    again = compressor.compress(unit) + compressor.flush(zlib.Z_FULL_FLUSH)
    assert block == again, "the repeated block must be the same bytes"
    end = compressor.compress(tail) + compressor.flush()
    crc = zlib.crc32(head)
    prefix_crc = zlib.crc32(unit[:4096], crc)
    for _ in range(mib):
        crc = zlib.crc32(unit, crc)
    crc = zlib.crc32(tail, crc)
    return Deflated(start + block * mib + end, len(head) + mib * MIB + len(tail), crc,
                    prefix_crc, len(head) + 4096)


def bomb_archive(document: bytes, member: str, bomb: Deflated, *, lie: bool) -> bytes:
    """``document`` (a real DOCX or XLSX) with ``member`` replaced by the bomb.

    Honest: the headers declare the full size (a reader that trusts them can refuse it).
    Lying: they declare only a 4 KB prefix and its CRC, so a reader that checks the
    declared sizes lets it in, and one that inflates a member whole in one call (as
    ``zipfile.ZipFile.read`` does) inflates the gigabyte before it cuts it to 4 KB.
    """
    with zipfile.ZipFile(io.BytesIO(document)) as source:
        members = [(info.filename, source.read(info)) for info in source.infolist()]
    out = io.BytesIO()
    directory = []
    for name, data in members:
        if name == member:
            size, crc = (bomb.prefix_size, bomb.prefix_crc) if lie else (bomb.size, bomb.crc)
            raw = bomb.stream
        else:
            compressor = zlib.compressobj(6, zlib.DEFLATED, -15)
            raw = compressor.compress(data) + compressor.flush()
            size, crc = len(data), zlib.crc32(data)
        directory.append(_entry(name, out.tell(), len(raw), size, crc))
        out.write(_local(name, len(raw), size, crc) + raw)
    start = out.tell()
    out.write(b"".join(directory))
    out.write(struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, len(directory), len(directory),
                          out.tell() - start, start, 0))
    return out.getvalue()


def _local(name: str, compressed: int, size: int, crc: int) -> bytes:
    encoded = name.encode()
    return struct.pack("<4s5H3L2H", b"PK\x03\x04", 20, 0, 8, 0, 0x21, crc, compressed, size,
                       len(encoded), 0) + encoded


def _entry(name: str, offset: int, compressed: int, size: int, crc: int) -> bytes:
    encoded = name.encode()
    return struct.pack("<4s6H3L5H2L", b"PK\x01\x02", 20, 20, 0, 8, 0, 0x21, crc, compressed,
                       size, len(encoded), 0, 0, 0, 0, 0, offset) + encoded
