"""Edits of a stored content body: which fields may change, and to what types.

An edit merges into the current body (unnamed fields are kept) and becomes a new version;
``expected_version`` makes it conditional (a stale edit is a 409, nothing changes).
"""

from __future__ import annotations

from typing import Any

from ..errors import Invalid

EDITABLE_FIELDS = frozenset({"title", "subject", "preheader", "html", "text", "posts",
                             "meta_description", "article_html", "link", "hashtags"})
LIST_FIELDS = frozenset({"posts", "hashtags"})
MAX_FIELD_CHARS = 2_000_000


def parse_edit(changes: dict[str, Any]) -> tuple[dict[str, Any], int | None]:
    """``(fields, expected_version)`` of a PUT body: the fields flat or under ``body``."""
    changes = dict(changes)
    expected = changes.pop("expected_version", None)
    if expected is not None and (not isinstance(expected, int) or isinstance(expected, bool)):
        raise Invalid("'expected_version' must be an integer")
    fields = changes.get("body", changes)
    if not isinstance(fields, dict) or not fields:
        raise Invalid("send the fields to change, or {'body': {...}}",
                      {"editable": sorted(EDITABLE_FIELDS)})
    _check_fields(fields)
    return fields, expected


def _check_fields(fields: dict[str, Any]) -> None:
    unknown = sorted(set(fields) - EDITABLE_FIELDS)
    if unknown:
        raise Invalid(f"fields that cannot be edited: {', '.join(unknown)}",
                      {"editable": sorted(EDITABLE_FIELDS)})
    for name, value in fields.items():
        if name in LIST_FIELDS:
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise Invalid(f"'{name}' must be a list of strings", {"field": name})
        elif value is not None and not isinstance(value, str):
            raise Invalid(f"'{name}' must be a string", {"field": name})
        elif isinstance(value, str) and len(value) > MAX_FIELD_CHARS:
            raise Invalid(f"'{name}' is too long", {"field": name})
