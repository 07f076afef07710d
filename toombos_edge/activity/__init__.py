"""The activity log: an audit line for everything worth one, in SQLite and a JSONL file."""

from .jsonl import JsonLines
from .lines import TYPES, Entry, describe
from .log import ActivityLog
from .repository import ActivityFilter

__all__ = ["TYPES", "ActivityFilter", "ActivityLog", "Entry", "JsonLines", "describe"]
