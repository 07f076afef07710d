"""Taking an ingestion in: an upload (already streamed and hashed) or a text becomes a job.

The one use case behind ``POST /api/ingest``. The request's fields are checked, its project
must exist, and the job is stored; from then on the upload is the job's. An upload whose
request is refused, or that an earlier job answers (the same ``Idempotency-Key``), is
removed at once rather than left for the sweep at the next start.
"""

from __future__ import annotations

from typing import Any, Protocol

from ..projects.service import ProjectService
from ..records.job import Job
from .ingest import KIND, validate_params
from .service import DocumentService
from .uploads import Upload, UploadSink


class JobSubmitter(Protocol):
    """What intake needs of the job engine: store a job, committed, and return it."""

    async def submit(
        self, kind: str, params: dict[str, Any], *, idempotency_key: str | None = None,
        correlation_id: str | None = None, metadata: dict[str, Any] | None = None,
    ) -> Job: ...


class IngestService:
    """Turns ingest requests into ``ingest`` jobs; owns the uploads until a job does."""

    def __init__(self, documents: DocumentService, projects: ProjectService,
                 jobs: JobSubmitter, *, max_upload_bytes: int) -> None:
        self._documents = documents
        self._projects = projects
        self._jobs = jobs
        #: The largest file a request may stream in.
        self.max_upload_bytes = max_upload_bytes
        self.accepted = 0

    def __repr__(self) -> str:
        return f"<IngestService accepted={self.accepted}>"

    def receive(self, filename: str, content_type: str) -> UploadSink:
        """A sink for one file of a request, hashed as it is written, at most
        ``max_upload_bytes``; ``finish`` gives the :class:`Upload` for :meth:`submit`."""
        return self._documents.uploads.sink(self.max_upload_bytes, filename, content_type)

    async def submit(
        self, fields: dict[str, Any], upload: Upload | None, *,
        correlation_id: str | None = None, idempotency_key: str | None = None,
    ) -> Job:
        """The ``ingest`` job for these fields (``metadata``, ``title``, ``text``,
        ``format``, ``project_id``) and upload, committed.

        ``Invalid`` (422) for a bad field, a file sent with a text, or a project that does
        not exist: nothing is stored and the upload is removed. With an ``idempotency_key``
        already used, the earlier job is returned and this upload removed.
        """
        try:
            params = validate_params({**fields, "upload": upload.to_json() if upload else None})
            await self._projects.require(params.get("project_id"))
            if upload is not None:
                await self._documents.share_upload(upload)
            job = await self._jobs.submit(
                KIND, params, correlation_id=correlation_id, idempotency_key=idempotency_key,
                metadata=params["metadata"],
            )
        except BaseException:
            await self.discard(upload)
            raise
        if upload is not None and (job.params.get("upload") or {}).get("name") != upload.name:
            await self.discard(upload)  # an earlier job answered: this file is no one's
        self.accepted += 1
        return job

    async def discard(self, upload: Upload | None) -> None:
        """Remove an upload no job will read (its request failed before :meth:`submit`)."""
        if upload is not None:
            await self._documents.discard_upload(upload)
