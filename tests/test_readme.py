"""The README keeps step with the code: its settings table and its two commands."""

from __future__ import annotations

import re
from pathlib import Path

from toombos_edge.settings import SPECS, defaults_table

README = Path(__file__).resolve().parent.parent / "README.md"
_ROW = re.compile(r"^\| `(TOOMBOS_[A-Z0-9_]+)` \| (.*?) \| (.*) \|$")
NO_DEFAULT = "(none)"


def readme_rows(text: str) -> list[tuple[str, str, str]]:
    """(variable, default, help) from every settings row of the README's table."""
    rows = []
    for line in text.splitlines():
        match = _ROW.match(line.strip())
        if match:
            env, default, help_text = match.groups()
            default = "" if default == NO_DEFAULT else default.strip("`")
            rows.append((env, default, help_text.strip()))
    return rows


def markdown(rows: list[tuple[str, str, str]]) -> str:
    """The table as the README should carry it (printed when the test fails)."""
    lines = ["| setting | default | what it does |", "| --- | --- | --- |"]
    for env, default, help_text in rows:
        shown = f"`{default}`" if default else NO_DEFAULT
        lines.append(f"| `{env}` | {shown} | {help_text} |")
    return "\n".join(lines)


def test_readme_settings_table_is_the_codes() -> None:
    """Same rows, same order, same defaults and help: a new setting needs its README row."""
    expected = defaults_table()
    assert len(expected) == len(SPECS)
    assert readme_rows(README.read_text(encoding="utf-8")) == expected, (
        "README.md's settings table is out of date; replace it with:\n" + markdown(expected)
    )


def test_readme_opens_with_the_two_commands() -> None:
    text = README.read_text(encoding="utf-8")
    first_block = re.search(r"```(?:sh|bash|console)?\n(.*?)```", text, re.S)
    assert first_block is not None
    assert first_block.group(1).split("\n")[:2] == ["make run", "make test"]
    assert text.index("make run") < text.index("## ")  # before any section
