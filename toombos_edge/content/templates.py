"""Jinja2 templates per channel and style, shipped in the package and overridable.

A file at ``<data>/templates/<family>/<style>.<ext>`` replaces the shipped one of the same
name. Templates run in Jinja's sandbox (an override is data, not code) with HTML
autoescaping. ``version()`` is a digest of every template's source, part of each cache key,
so editing a template never serves stale renders.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .channels import Channel, Style

if TYPE_CHECKING:
    from jinja2 import Template
    from jinja2.sandbox import ImmutableSandboxedEnvironment

FAMILIES: dict[str, tuple[str, tuple[Channel, ...]]] = {
    "email": ("html", (Channel.email,)),
    "email_text": ("txt", (Channel.email,)),
    "website": ("html", (Channel.website,)),
    "social": ("txt", (Channel.twitter, Channel.linkedin, Channel.facebook)),
}

VARIABLES: dict[str, list[str]] = {
    "email": ["title", "subject", "preheader", "greeting", "intro", "body_html", "cta",
              "link", "closing", "style", "tone", "content_type"],
    "email_text": ["title", "greeting", "intro", "body_text", "cta", "link", "closing"],
    "website": ["title", "meta_description", "reading_time", "article_html", "tags",
                "published", "canonical_url", "content_type"],
    "social": ["platform", "title", "intro", "cta", "emoji", "content_type"],
}

DESCRIPTIONS = {
    Style.modern: "bold header band, rounded card, sans-serif",
    Style.classic: "serif type, centred masthead, ruled sections",
    Style.minimal: "plain and quiet: no colour, no emoji",
}


@dataclass(frozen=True, slots=True)
class TemplateInfo:
    id: str
    family: str
    style: Style
    path: str
    overridden: bool

    def to_json(self) -> dict[str, Any]:
        extension, channels = FAMILIES[self.family]
        return {
            "id": self.id,
            "name": f"{self.family.replace('_', ' ').title()} — {self.style.value}",
            "description": f"{self.family.replace('_', ' ')} ({extension}): "
                           f"{DESCRIPTIONS[self.style]}",
            "style": self.style.value,
            "channels": [c.value for c in channels],
            "supported_channels": [c.value for c in channels],
            "variables": VARIABLES[self.family],
            "source": "override" if self.overridden else "package",
        }


class TemplateLibrary:
    """Loads, lists and versions the templates; ``get`` is thread-safe (Jinja caches)."""

    def __init__(self, override_dir: Path | None = None) -> None:
        self.override_dir = override_dir
        self._lock = threading.Lock()
        self._version: tuple[tuple[tuple[str, float], ...], str] | None = None

    @cached_property
    def _env(self) -> ImmutableSandboxedEnvironment:
        """Jinja's sandbox over the override folder, then the package's templates.

        Built, and jinja2 imported, at the first render or listing: jinja2 adds about 2 MB
        of resident memory to a server that renders nothing (bench.startup). Building it
        twice at once (two threads) is harmless: both are equal and one is kept.
        """
        from jinja2 import ChoiceLoader, FileSystemLoader, PackageLoader, select_autoescape
        from jinja2.sandbox import ImmutableSandboxedEnvironment

        loaders: list[Any] = []
        if self.override_dir is not None:
            loaders.append(FileSystemLoader(str(self.override_dir)))
        loaders.append(PackageLoader("toombos_edge.content", "templates"))
        return ImmutableSandboxedEnvironment(
            loader=ChoiceLoader(loaders),
            autoescape=select_autoescape(enabled_extensions=("html",), default=False),
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=False,
            auto_reload=True,
        )

    def __repr__(self) -> str:
        return f"<TemplateLibrary override_dir={self.override_dir}>"

    @staticmethod
    def name(family: str, style: Style) -> str:
        extension, _channels = FAMILIES[family]
        folder = family.removesuffix("_text")
        stem = "text" if family.endswith("_text") else style.value
        return f"{folder}/{stem}.{extension}"

    def get(self, family: str, style: Style) -> Template:
        return self._env.get_template(self.name(family, style))

    def render(self, family: str, style: Style, /, **variables: Any) -> str:
        return self.get(family, style).render(**variables).strip() + "\n"

    def list(self) -> list[TemplateInfo]:
        """Every template (each family in each style), marking the overridden ones."""
        out = []
        for family in FAMILIES:
            styles = [Style.modern] if family.endswith("_text") else list(Style)
            for style in styles:
                name = self.name(family, style)
                template_id = name.rsplit(".", 1)[0].replace("/", "-")
                overridden = self._overridden(name)
                out.append(TemplateInfo(template_id, family, style, name, overridden))
        return out

    def version(self) -> str:
        """A short digest of every template's source (recomputed when an override changes)."""
        stamp = self._override_stamp()
        with self._lock:
            if self._version is not None and self._version[0] == stamp:
                return self._version[1]
            digest = hashlib.sha256()
            for name in self._env.list_templates():  # partials and overrides included
                digest.update(name.encode() + b"\0" + self._source(name) + b"\0")
            version = digest.hexdigest()[:12]
            self._version = (stamp, version)
            return version

    def _source(self, name: str) -> bytes:
        from jinja2 import TemplateNotFound  # loaded with the environment: see _env

        try:
            source, _filename, _uptodate = self._env.loader.get_source(  # type: ignore[union-attr]
                self._env, name)
        except (TemplateNotFound, UnicodeDecodeError, OSError):
            return b"?"  # a stray or unreadable file in the override folder
        return source.encode("utf-8")

    def _overridden(self, name: str) -> bool:
        return self.override_dir is not None and (self.override_dir / name).is_file()

    def _override_stamp(self) -> tuple[tuple[str, float], ...]:
        if self.override_dir is None or not self.override_dir.is_dir():
            return ()
        return tuple(
            sorted((str(p), p.stat().st_mtime) for p in self.override_dir.rglob("*") if p.is_file())
        )
