"""Templates: shipped per channel and style, overridable from the data dir, sandboxed."""

from __future__ import annotations

from pathlib import Path

import pytest
from jinja2.exceptions import SecurityError, UndefinedError

from toombos_edge.content.channels import Channel, Style
from toombos_edge.content.render import Renderer, RenderOptions
from toombos_edge.content.source import inline_source
from toombos_edge.content.templates import TemplateLibrary


def test_listing_covers_every_family_and_style() -> None:
    listed = [info.to_json() for info in TemplateLibrary().list()]
    ids = {t["id"] for t in listed}
    assert {"email-modern", "email-classic", "email-minimal", "website-minimal",
            "social-classic", "email-text"} <= ids
    for template in listed:
        assert template["name"] and template["description"] and template["variables"]
        assert template["style"] in {"modern", "classic", "minimal"}
        assert template["supported_channels"] and template["source"] == "package"


def test_an_override_in_the_data_dir_wins_and_changes_the_version(tmp_path: Path) -> None:
    library = TemplateLibrary(tmp_path)
    before = library.version()
    (tmp_path / "website").mkdir()
    (tmp_path / "website" / "minimal.html").write_text(
        "<html><body><h1>{{ title }}</h1><main>{{ article_html }}</main>"
        "<footer>house style</footer></body></html>")
    assert library.version() != before
    html = Renderer(library).render(inline_source("Hi", "Some *text*."), Channel.website,
                                    RenderOptions(style=Style.minimal))["html"]
    assert "house style" in html and "<em>text</em>" in html
    overridden = {t.id: t.overridden for t in library.list()}
    assert overridden["website-minimal"] and not overridden["website-modern"]


def test_override_templates_run_sandboxed(tmp_path: Path) -> None:
    (tmp_path / "social").mkdir()
    (tmp_path / "social" / "modern.txt").write_text(
        "{{ title.__class__.__mro__[1].__subclasses__() }}")
    renderer = Renderer(TemplateLibrary(tmp_path))
    with pytest.raises((SecurityError, UndefinedError)):
        renderer.render(inline_source("Hi", "Text."), Channel.twitter, RenderOptions())
