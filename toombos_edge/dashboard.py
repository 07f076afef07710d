"""The bundled dashboard's files: found once, read into memory with a version and gzip.

The files live in ``static/`` at the top of the repository; a wheel carries them as
``toombos_edge/static`` (``setup.py`` copies them there). :func:`static_dir` finds either.
Every asset is served under ``/static/<version>/``, where the version is a hash of all the
files: a changed file changes every URL, so browsers may keep an asset for a year.
"""

from __future__ import annotations

import gzip
import hashlib
import mimetypes
from dataclasses import dataclass, field
from pathlib import Path

#: The placeholder index.html carries where the asset version goes.
VERSION_MARK = b"__VERSION__"
#: Text worth compressing; images and fonts are already compressed or tiny.
_TEXT_TYPES = ("text/", "application/json", "image/svg+xml")
_TYPES = {".js": "text/javascript; charset=utf-8", ".mjs": "text/javascript; charset=utf-8",
          ".css": "text/css; charset=utf-8", ".html": "text/html; charset=utf-8",
          ".svg": "image/svg+xml",
          ".json": "application/json", ".txt": "text/plain", ".ico": "image/x-icon",
          ".png": "image/png", ".woff2": "font/woff2"}
_GZIP_FROM = 1024  # bytes: below this, gzip's header costs more than it saves


@dataclass(frozen=True, slots=True)
class Asset:
    body: bytes
    content_type: str
    etag: str
    #: The gzip-compressed body, when it is smaller.
    gzipped: bytes | None = None


@dataclass(slots=True)
class DashboardFiles:
    root: Path
    version: str = "none"
    index: Asset | None = None
    assets: dict[str, Asset] = field(default_factory=dict)

    def asset(self, path: str) -> Asset | None:
        return self.assets.get(path)

    def __repr__(self) -> str:
        return f"<DashboardFiles root={self.root} version={self.version} files={len(self.assets)}>"


def static_dir() -> Path:
    """The dashboard folder: inside the installed package, else the checkout's ``static/``."""
    packaged = Path(__file__).parent / "static"
    if (packaged / "index.html").is_file():
        return packaged
    return Path(__file__).resolve().parent.parent / "static"


def load(root: Path) -> DashboardFiles:
    """Read every file under ``root`` (blocking: run it off the loop)."""
    files = DashboardFiles(root)
    if not (root / "index.html").is_file():
        return files  # not installed: `/` answers 503 and says so
    paths = sorted(p for p in root.rglob("*") if p.is_file() and not p.name.startswith("."))
    digest = hashlib.sha256()
    raw: dict[str, bytes] = {}
    for path in paths:
        rel = path.relative_to(root).as_posix()
        raw[rel] = path.read_bytes()
        digest.update(rel.encode() + b"\0" + raw[rel] + b"\0")
    files.version = digest.hexdigest()[:12]
    for rel, body in raw.items():
        files.assets[rel] = _asset(rel, body)
    index = raw["index.html"].replace(VERSION_MARK, files.version.encode())
    files.index = _asset("index.html", index)
    return files


def _asset(rel: str, body: bytes) -> Asset:
    suffix = Path(rel).suffix.lower()
    content_type = _TYPES.get(suffix) or mimetypes.guess_type(rel)[0] or "text/plain"
    etag = '"' + hashlib.sha256(body).hexdigest()[:20] + '"'
    gzipped = None
    if content_type.startswith(_TEXT_TYPES) and len(body) >= _GZIP_FROM:
        packed = gzip.compress(body, compresslevel=9, mtime=0)
        gzipped = packed if len(packed) < len(body) else None
    return Asset(body, content_type, etag, gzipped)
