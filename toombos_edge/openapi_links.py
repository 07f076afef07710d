"""OpenAPI links: which answer's id feeds which operation next (create → get → update → delete).

A client generator turns them into follow-up calls; a stateful fuzzer follows them to reach
what exists rather than guessing ids. Each link names its source and target by method and
path (as the route table spells them) and is resolved to the target's ``operationId`` in
the built document, so it follows whatever ids the document gives its operations.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Link:
    source: tuple[str, str]  #: (method, path) of the operation that answers
    status: int  #: the answer's status that carries the id
    target: tuple[str, str]  #: (method, path) of the operation it feeds
    parameter: str  #: the target's path parameter
    pointer: str  #: where the id is in the answer's body (JSON pointer)


def _fan_out(
    source: tuple[str, str], status: int, pointer: str, parameter: str,
    targets: tuple[tuple[str, str], ...],
) -> list[Link]:
    return [Link(source, status, target, parameter, pointer) for target in targets]


def _document_links(prefix: str) -> list[Link]:
    item = f"{prefix}/documents/{{doc_id}}"
    return _fan_out(("POST", f"{prefix}/documents"), 201, "/id", "doc_id", (
        ("GET", item), ("PUT", item), ("GET", f"{item}/raw"), ("DELETE", item)))


#: Operations that answer 202 with a job, and what may be done with that job next.
_JOB_MAKERS = (
    ("POST", "/api/jobs"), ("POST", "/api/ingest"), ("POST", "/api/v2/content/sync"),
    ("POST", "/api/v2/content/generate"), ("POST", "/api/v1/generate"),
)
_JOB_USES = (
    ("GET", "/api/jobs/{job_id}"), ("GET", "/api/v2/jobs/{job_id}"),
    ("GET", "/api/status/{job_id}"), ("POST", "/api/jobs/{job_id}/cancel"),
    ("POST", "/api/v2/jobs/{job_id}/retry"), ("DELETE", "/api/v2/content/sync/{job_id}"),
)
_CONTENT_USES = (
    ("GET", "/api/v2/content/{content_id}"), ("GET", "/api/v1/content/{content_id}"),
    ("PUT", "/api/v2/content/{content_id}"), ("GET", "/api/v2/content/{content_id}/versions"),
    ("POST", "/api/v2/content/{content_id}/publish"), ("DELETE", "/api/v2/content/{content_id}"),
)

LINKS: tuple[Link, ...] = (
    *_document_links("/api"),
    *_document_links("/api/v1"),
    *(link for maker in _JOB_MAKERS
      for link in _fan_out(maker, 202, "/job_id", "job_id", _JOB_USES)),
    *_fan_out(("GET", "/api/v2/content"), 200, "/content/0/id", "content_id", _CONTENT_USES),
    *_fan_out(("POST", "/admin/keys"), 201, "/id", "key_id", (("DELETE", "/admin/keys/{key_id}"),)),
)


def attach(document: dict[str, Any], links: tuple[Link, ...] = LINKS) -> dict[str, Any]:
    """Add ``links`` to the responses of ``document`` (in place; returned for chaining).

    A response the document already describes keeps its description and schema; one it does
    not yet gets a bare description. A link whose source or target the document lacks (a
    smaller route table) is left out; the tests check that the real table has them all.
    """
    for link in links:
        source, target = _operation(document, link.source), _operation(document, link.target)
        if source is None or target is None:
            continue
        response = source["responses"].setdefault(
            str(link.status), {"description": "the answer whose id the links use"})
        response.setdefault("links", {})[target["operationId"]] = {
            "operationId": target["operationId"],
            "parameters": {link.parameter: f"$response.body#{link.pointer}"},
        }
    return document


def _operation(document: dict[str, Any], key: tuple[str, str]) -> dict[str, Any] | None:
    method, path = key
    found: dict[str, Any] | None = document["paths"].get(path, {}).get(method.lower())
    return found
