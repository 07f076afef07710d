"""The project record, the shapes of its changes, and what deleting one does."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from ..errors import Invalid
from ..ids import iso

MAX_NAME_CHARS = 200
MAX_DESCRIPTION_CHARS = 10_000


class OnDocuments(StrEnum):
    """What deleting a project does with the documents that still belong to it."""

    detach = "detach"  #: keep them, without a project
    delete = "delete"  #: delete them too (their blobs when no other document uses them)


class UnknownProject(Invalid):
    """A document named a project that does not exist (422, naming the field)."""

    def __init__(self, project_id: str) -> None:
        super().__init__(f"'project_id': no project {project_id!r}",
                         {"field": "project_id", "project_id": project_id})


@dataclass(slots=True)
class Project:
    """One project as stored; times are integer milliseconds since the epoch (UTC)."""

    id: str
    name: str
    description: str
    metadata: dict[str, Any]
    created_at: int
    updated_at: int
    document_count: int = 0  #: read with the project, never stored

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "description": self.description,
            "metadata": self.metadata,
            "document_count": self.document_count,
            "created_at": iso(self.created_at),
            "updated_at": iso(self.updated_at),
        }


@dataclass(frozen=True, slots=True)
class NewProject:
    """A create request, validated."""

    name: str
    description: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ProjectChanges:
    """An update request, validated: None leaves a field as it is."""

    name: str | None = None
    description: str | None = None
    metadata: dict[str, Any] | None = None

    def names(self) -> list[str]:
        """The fields this update sets, in a stable order (for the activity log)."""
        return [name for name in ("name", "description", "metadata")
                if getattr(self, name) is not None]


@dataclass(frozen=True, slots=True)
class ProjectDeleted:
    """What a delete did."""

    project_id: str
    on_documents: OnDocuments | None
    documents_detached: int = 0
    documents_deleted: int = 0
    blobs_removed: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.project_id,
            "deleted": True,
            "documents": self.on_documents.value if self.on_documents else None,
            "documents_detached": self.documents_detached,
            "documents_deleted": self.documents_deleted,
            "blobs_removed": self.blobs_removed,
        }
