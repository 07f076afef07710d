"""Projects (seed 002): list, create, get, update, delete.

Bodies and queries arrive typed (:mod:`.schemas.projects`); what a type cannot say (a name
of spaces only, metadata sent as a JSON string) is checked here, a 422 naming the field.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from msgspec import UnsetType

from ..appkeys import PROJECTS
from ..documents.ingest import parse_metadata
from ..errors import Invalid
from ..records.project import NewProject, ProjectChanges
from .responses import json_response
from .schemas.projects import DeleteQuery, NewProjectBody, ProjectChangesBody, ProjectQuery


def project_name(value: str) -> str:
    name = value.strip()
    if not name:
        raise Invalid("name: must not be only spaces", {"field": "name"})
    return name


def metadata(value: Any) -> dict[str, Any]:
    try:
        return parse_metadata(value)
    except Invalid as exc:
        raise Invalid(f"metadata: {exc}", {"field": "metadata"}) from None


def new_project(body: NewProjectBody) -> NewProject:
    return NewProject(name=project_name(body.name), description=body.description or "",
                      metadata=metadata(body.metadata))


def project_changes(body: ProjectChangesBody) -> ProjectChanges:
    """An update: the fields sent; at least one."""
    changes = ProjectChanges(
        name=None if isinstance(body.name, UnsetType) else project_name(body.name),
        description=None if isinstance(body.description, UnsetType) else (
            body.description or ""),
        metadata=None if isinstance(body.metadata, UnsetType) else metadata(body.metadata),
    )
    if not changes.names():
        raise Invalid("body: nothing to update: send 'name', 'description' or 'metadata'",
                      {"field": "body"})
    return changes


async def list_projects(request: web.Request, query: ProjectQuery) -> web.Response:
    """A page of projects, newest first, each with its document count."""
    projects, total = await request.app[PROJECTS].list(limit=query.limit, offset=query.offset)
    return json_response({"projects": [project.to_json() for project in projects],
                          "total": total, "limit": query.limit, "offset": query.offset})


async def create_project(request: web.Request, body: NewProjectBody) -> web.Response:
    """A new project: ``name``, ``description``, ``metadata``."""
    project = await request.app[PROJECTS].create(new_project(body))
    return json_response(project.to_json(), status=201)


async def get_project(request: web.Request) -> web.Response:
    """One project with its document count."""
    project = await request.app[PROJECTS].get(request.match_info["project_id"])
    return json_response(project.to_json())


async def update_project(request: web.Request, body: ProjectChangesBody) -> web.Response:
    """Change ``name``, ``description`` or ``metadata`` (each replaced as sent)."""
    project = await request.app[PROJECTS].update(request.match_info["project_id"],
                                                 project_changes(body))
    return json_response(project.to_json())


async def delete_project(request: web.Request, query: DeleteQuery) -> web.Response:
    """Delete; with documents left, 409 unless ``?documents=detach`` or ``=delete``."""
    deleted = await request.app[PROJECTS].delete(request.match_info["project_id"],
                                                 query.documents)
    return json_response(deleted.to_json())
