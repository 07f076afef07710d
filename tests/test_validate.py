"""The validate call: issues, warnings, strictness and the enhanced metadata."""

from __future__ import annotations

from pathlib import Path

import pytest

from toombos_edge.content.validate import validate
from toombos_edge.errors import Invalid

FIXTURE = (Path(__file__).parent / "fixtures" / "launch.md").read_text()


def test_a_good_update_is_valid_with_metadata() -> None:
    result = validate({"content": FIXTURE, "content_type": "update"})
    assert result["is_valid"] and result["issues"] == []
    meta = result["enhanced_metadata"]
    assert meta["word_count"] > 150 and meta["reading_time"] == 1
    assert 50 <= meta["seo_score"] <= 100
    assert "email" in meta["recommended_channels"]


def test_problems_are_issues_and_strict_promotes_warnings() -> None:
    short = {"content": {"title": "Hi", "text": "Too short."}, "content_type": "blog"}
    lenient = validate(short)
    assert lenient["is_valid"] and len(lenient["warnings"]) >= 2
    strict = validate({**short, "strict": True})
    assert not strict["is_valid"] and strict["warnings"] == []
    assert len(strict["issues"]) == len(lenient["warnings"])
    placeholder = validate({"content": "# Draft title for the launch page\n\nTODO write this"})
    assert not placeholder["is_valid"] and any("TODO" in i for i in placeholder["issues"])
    assert not validate({"content": "   "})["is_valid"]


def test_bad_input_is_a_422() -> None:
    with pytest.raises(Invalid):
        validate({"content": 42})
    with pytest.raises(Invalid):
        validate({"content": "x", "content_type": "poem"})
    with pytest.raises(Invalid):
        validate({"content": "x", "strict": "yes"})
