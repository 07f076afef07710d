"""IngestService: an ingest request becomes a job in one call, and an upload no job takes
is removed at once (the service of a real app, on a real file)."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import Client, auth
from ingesting import stage

from toombos_edge.appkeys import DOCUMENTS, ENGINE, INGEST
from toombos_edge.errors import Invalid
from toombos_edge.records.project import UnknownProject


def files(root: Path) -> list[str]:
    return sorted(p.name for p in root.rglob("*") if p.is_file())


async def test_a_refused_request_stores_nothing_and_drops_its_upload(
    client: Client, admin_key: str
) -> None:
    intake, uploads = client.app[INGEST], client.app[DOCUMENTS].uploads
    refusals: list[tuple[dict[str, object], type[Exception]]] = [
        ({"project_id": "prj_nope"}, UnknownProject),
        ({"metadata": "[1, 2]"}, Invalid),
        ({"text": "and a file"}, Invalid),
    ]
    for fields, error in refusals:
        upload = await stage(client.app, b"refused bytes", "r.txt")
        assert files(uploads.root) == [upload.name]
        with pytest.raises(error):
            await intake.submit(fields, upload, correlation_id="c-1")
        assert files(uploads.root) == []
    jobs = await client.get("/api/jobs", headers=auth(admin_key))
    assert (await jobs.json())["total"] == 0
    assert intake.accepted == 0


async def test_a_repeated_key_answers_the_first_job_and_drops_the_second_file(
    client: Client,
) -> None:
    intake, uploads = client.app[INGEST], client.app[DOCUMENTS].uploads
    client.app[ENGINE].pause()
    first_upload = await stage(client.app, b"first", "a.txt")
    first = await intake.submit({"title": "One"}, first_upload, idempotency_key="k-1")
    second_upload = await stage(client.app, b"second", "b.txt")
    second = await intake.submit({"title": "Two"}, second_upload, idempotency_key="k-1")
    assert second.id == first.id and second.params["title"] == "One"
    assert files(uploads.root) == [first_upload.name]
    text = await intake.submit({"text": "typed", "metadata": '{"a": 1}'}, None)
    assert (text.kind, text.params["metadata"], text.id != first.id) == ("ingest", {"a": 1},
                                                                         True)
    assert intake.accepted == 3
