"""Critical operations: emergency publishing and rollback (admin only)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from msgspec import UNSET, Meta, UnsetType

from ..contract import Body, Reply
from .content import Generate
from .jobs import Job

ContentId = Annotated[str, Meta(min_length=1, max_length=200)]


class Emergency(Generate):
    """Stored items to publish now (``content_id`` or ``content_ids``, with optional
    ``recipients``), or else a generate request, generated and published now."""

    content_id: ContentId | UnsetType = UNSET
    content_ids: Annotated[list[ContentId], Meta(min_length=1, max_length=1000)] | UnsetType = (
        UNSET)


class EmergencyAccepted(Reply):
    status: Literal["accepted"]
    urgent: bool
    jobs: list[Job]


class Rollback(Body):
    """``content_id`` (to ``to_version``, or the one before), or every item of ``job_id``."""

    content_id: ContentId | None = None
    job_id: Annotated[str, Meta(min_length=1, max_length=200)] | None = None
    to_version: Annotated[int, Meta(ge=1)] | None = None
    republish: bool = True


class RolledBack(Reply):
    #: per item: ``{content, republish_job_id}``, or ``{content_id, error}``
    rolled_back: list[dict[str, Any]]
    total: int
