"""Persistence: the SQLite database and its migrations."""

from .sqlite.database import Database, apply_migrations, migrations

__all__ = ["Database", "apply_migrations", "migrations"]
