"""Projects (seed 002): list, create, get, update, delete.

Each request is read by one small function into a typed value (``NewProject``,
``ProjectChanges``, ``OnDocuments``) before the service sees it; bad input is a 422 that
names the field.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ..appkeys import PROJECTS
from ..content.ingest import parse_metadata
from ..errors import Invalid
from ..projects.model import (
    MAX_DESCRIPTION_CHARS,
    MAX_NAME_CHARS,
    NewProject,
    OnDocuments,
    ProjectChanges,
)
from .paging import int_param
from .responses import json_object, json_response


def page(request: web.Request) -> tuple[int, int]:
    """``limit`` (1 to 500, default 50) and ``offset``, as the other lists take them."""
    return (int_param(request, "limit", 50, 1, 500, error=Invalid),
            int_param(request, "offset", 0, 0, 10**9, error=Invalid))


def project_name(value: Any) -> str:
    if not isinstance(value, str):
        raise Invalid("'name' must be a string")
    name = value.strip()
    if not 1 <= len(name) <= MAX_NAME_CHARS:
        raise Invalid(f"'name' must be 1 to {MAX_NAME_CHARS} characters (spaces around it "
                      "are dropped)")
    return name


def description(value: Any) -> str:
    """A string of at most MAX_DESCRIPTION_CHARS; null is the empty description."""
    if value is None:
        return ""
    if not isinstance(value, str):
        raise Invalid("'description' must be a string")
    if len(value) > MAX_DESCRIPTION_CHARS:
        raise Invalid(f"'description' must be at most {MAX_DESCRIPTION_CHARS} characters")
    return value


def new_project(body: dict[str, Any]) -> NewProject:
    """A create request: ``name`` (required), ``description``, ``metadata`` (an object)."""
    if "name" not in body:
        raise Invalid("'name' is required")
    return NewProject(name=project_name(body["name"]),
                      description=description(body.get("description")),
                      metadata=parse_metadata(body.get("metadata")))


def project_changes(body: dict[str, Any]) -> ProjectChanges:
    """An update request: any of ``name``, ``description``, ``metadata``; at least one."""
    changes = ProjectChanges(
        name=project_name(body["name"]) if "name" in body else None,
        description=description(body["description"]) if "description" in body else None,
        metadata=parse_metadata(body["metadata"]) if "metadata" in body else None,
    )
    if not changes.names():
        raise Invalid("nothing to update: send 'name', 'description' or 'metadata'")
    return changes


def on_documents(request: web.Request) -> OnDocuments | None:
    """``?documents=detach|delete``: what a delete does with the project's documents."""
    raw = request.query.get("documents") or None
    if raw is None:
        return None
    try:
        return OnDocuments(raw)
    except ValueError:
        choices = ", ".join(choice.value for choice in OnDocuments)
        raise Invalid(f"'documents' must be one of {choices}, got {raw!r}") from None


async def list_projects(request: web.Request) -> web.Response:
    """A page of projects, newest first, each with its document count."""
    limit, offset = page(request)
    projects, total = await request.app[PROJECTS].list(limit=limit, offset=offset)
    return json_response({"projects": [project.to_json() for project in projects],
                          "total": total, "limit": limit, "offset": offset})


async def create_project(request: web.Request) -> web.Response:
    """A new project: ``name``, ``description``, ``metadata``."""
    project = await request.app[PROJECTS].create(new_project(await json_object(request)))
    return json_response(project.to_json(), status=201)


async def get_project(request: web.Request) -> web.Response:
    """One project with its document count."""
    project = await request.app[PROJECTS].get(request.match_info["project_id"])
    return json_response(project.to_json())


async def update_project(request: web.Request) -> web.Response:
    """Change ``name``, ``description`` or ``metadata`` (each replaced as sent)."""
    changes = project_changes(await json_object(request))
    project = await request.app[PROJECTS].update(request.match_info["project_id"], changes)
    return json_response(project.to_json())


async def delete_project(request: web.Request) -> web.Response:
    """Delete; with documents left, 409 unless ``?documents=detach`` or ``=delete``."""
    deleted = await request.app[PROJECTS].delete(request.match_info["project_id"],
                                                 on_documents(request))
    return json_response(deleted.to_json())
