"""A document's project: the check made in the very write that sets it, and the value
that leaves it unchanged.

Checked in the same transaction as the document's insert or update, so that no project
can be deleted between the check and the write (migration 0009's foreign key would refuse
it too, but as an ``IntegrityError`` instead of a 422 naming the field).
"""

from __future__ import annotations

import sqlite3
from enum import Enum
from typing import Literal

from ..errors import Invalid
from . import repository


class Keep(Enum):
    project = "keep"


#: An update's default: the document stays in its project (None takes it out of one).
KEEP_PROJECT: Literal[Keep.project] = Keep.project
ProjectChoice = str | None | Literal[Keep.project]


def unknown_project(project_id: str) -> Invalid:
    return Invalid(f"'project_id': no project {project_id!r}",
                   {"field": "project_id", "project_id": project_id})


def check_project(conn: sqlite3.Connection, project_id: str | None) -> None:
    """``unknown_project`` unless ``project_id`` is None or names a project."""
    if project_id is not None and not repository.exists(conn, project_id):
        raise unknown_project(project_id)
