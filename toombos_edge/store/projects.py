"""The projects' storage interface: what the project service needs of a backend.

Every method is one transaction. A project's ``document_count`` is read with it (never
stored), in the same transaction. Deleting a project that has documents runs as several
short transactions (``delete_step``), so that a large project never holds the writer long.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from ..records.project import OnDocuments, Project, ProjectChanges


@dataclass(frozen=True, slots=True)
class DeleteStep:
    """What one transaction of a delete did."""

    detached: int = 0  #: documents taken out of the project
    blobs: list[str | None] = field(default_factory=list)  #: of each deleted document
    done: bool = True  #: the project is gone
    blocking: int = 0  #: without a choice for its documents: how many stopped the delete


class ProjectStore(Protocol):
    """Projects, and their documents' membership when one is deleted."""

    async def insert(self, project: Project) -> None:
        """Store a new project (its ``document_count`` is not stored)."""

    async def get(self, project_id: str) -> Project | None:
        """The project with its document count, or None."""

    async def exists(self, project_id: str) -> bool:
        """Whether the project exists now (a later write checks again)."""

    async def list_page(self, *, limit: int, offset: int) -> tuple[list[Project], int]:
        """Newest first (ids sort by creation time), each with its document count; and
        how many projects there are."""

    async def update(
        self, project_id: str, changes: ProjectChanges, now: int
    ) -> Project | None:
        """Set the fields ``changes`` gives and ``updated_at``, in one transaction; returns
        the new record (with its document count), or None if there is no such project."""

    async def delete_step(
        self, project_id: str, on_documents: OnDocuments | None, *, most: int, now: int
    ) -> DeleteStep | None:
        """One transaction of a delete; None if there is no such project.

        With ``on_documents`` None: if documents still belong to the project, nothing
        changes and ``blocking`` says how many; else the project goes. With ``detach`` or
        ``delete``: up to ``most`` of its documents are taken out of it (``updated_at``
        set to ``now``) or deleted; the project goes in the transaction that finds fewer
        than ``most`` left. It may run when the storage is full: it frees space.
        """
