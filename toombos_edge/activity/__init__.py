"""The activity log: an audit line for everything worth one, in SQLite and a JSONL file."""

from ..records.activity import ActivityFilter
from .jsonl import JsonLines
from .lines import TYPES, Entry, describe
from .log import ActivityLog, for_settings

__all__ = ["TYPES", "ActivityFilter", "ActivityLog", "Entry", "JsonLines", "describe",
           "for_settings"]
