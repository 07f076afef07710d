"""Projects (seed 002): a name, a description and metadata; documents belong to one."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from msgspec import UNSET, Meta, UnsetType

from ...records.project import MAX_DESCRIPTION_CHARS, MAX_NAME_CHARS, OnDocuments
from ..contract import NOT_BLANK, Body, Query, Reply
from .documents import Metadata

Name = Annotated[str, Meta(min_length=1, max_length=MAX_NAME_CHARS, pattern=NOT_BLANK,
                           description="spaces around it are dropped")]
Description = Annotated[str, Meta(max_length=MAX_DESCRIPTION_CHARS)]


class ProjectQuery(Query):
    limit: Annotated[int, Meta(ge=1, le=500)] = 50
    offset: Annotated[int, Meta(ge=0, le=10**9)] = 0


class NewProjectBody(Body):
    name: Name
    description: Description | None = None
    metadata: Metadata | None = None


class ProjectChangesBody(Body):
    """At least one of ``name``, ``description``, ``metadata``; each replaced as sent."""

    name: Name | UnsetType = UNSET
    description: Description | UnsetType | None = UNSET
    metadata: Metadata | UnsetType | None = UNSET


class DeleteQuery(Query):
    """``documents``: what to do with the documents still in the project (else a 409)."""

    documents: OnDocuments | None = None


class Project(Reply):
    id: str
    name: str
    description: str
    metadata: dict[str, Any]
    document_count: int
    created_at: datetime
    updated_at: datetime


class ProjectPage(Reply):
    projects: list[Project]
    total: int
    limit: int
    offset: int


class ProjectDeleted(Reply):
    id: str
    deleted: bool
    documents: OnDocuments | None
    documents_detached: int
    documents_deleted: int
    blobs_removed: int
