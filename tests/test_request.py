"""Generate requests: every accepted spelling normalises to the same params."""

from __future__ import annotations

import msgspec
import pytest

from toombos_edge.content.channels import ALL_CHANNELS, Channel, Style, Tone
from toombos_edge.content.request import GenerateRequest, parse, validate_params
from toombos_edge.content.request_body import GenerateFields, request_of
from toombos_edge.errors import Invalid


def test_the_seed_form_spellings() -> None:
    request = parse({"living_doc_id": "doc_1", "channel": "twitter", "tone": "casual",
                     "dry_run": True})
    assert request.document_id == "doc_1" and request.channels == (Channel.twitter,)
    assert request.tone is Tone.casual and request.dry_run


def test_the_contract_spellings() -> None:
    request = parse({"document_id": "doc_1", "channels": ["email", "social_linkedin", "web"],
                     "content_type": "blog", "template_style": "classic",
                     "schedule_time": "2030-01-01T00:00:00Z", "metadata": {"a": 1}})
    assert request.channels == (Channel.email, Channel.linkedin, Channel.website)
    assert request.style is Style.classic and request.scheduled_for == 1893456000000
    assert parse(validate_params(request.to_params())) == parse(request.to_params())


def test_defaults_and_inline_text() -> None:
    request = parse({"text": "Hello world."})
    assert request.channels == ALL_CHANNELS and not request.publish
    assert parse({"text": "x"}, publish=True).publish


@pytest.mark.parametrize("body", [
    {},
    {"document_id": "d", "channels": []},
    {"document_id": "d", "channels": ["fax"]},
    {"document_id": "d", "tone": "angry"},
    {"document_id": "d", "template_style": 3},
    {"document_id": "d", "schedule_time": "tomorrow"},
    {"document_id": "d", "schedule_time": "2030-01-01T00:00:00"},
    {"document_id": "d", "metadata": "x"},
    {"document_id": "d", "dry_run": "yes"},
    {"document_id": "d", "link": "javascript:alert(1)"},
    {"document_id": "d", "recipients": ["a@b.example\nBcc: everyone@example.org"]},
    {"document_id": "d", "recipients": ["not-an-address"]},
])
def test_bad_requests_are_refused(body: dict[str, object]) -> None:
    with pytest.raises(Invalid):
        parse(body)


SPELLINGS: list[dict[str, object]] = [
    {"living_doc_id": "doc_1", "channel": "twitter", "tone": "casual", "dry_run": True},
    {"document_id": "doc_1", "channels": ["email", "social_linkedin", "web"],
     "content_type": "blog", "template_style": "classic", "style": "minimal",
     "schedule_time": "2030-01-01T00:00:00Z", "metadata": {"a": 1}},
    {"content": "Inline text.", "channels": "x, linkedin ,email", "tags": "a, b,,c",
     "recipients": "a@example.com, b@example.com", "publish": True, "link": "https://x.test"},
    {"text": "Hi.", "title": "", "document_id": "", "style": "minimal", "tone": "",
     "scheduled_for": "2030-01-01T01:00:00+01:00", "recipients": ""},
    {"text": "Hi.", "tags": ["  one ", "", "two"], "content_type": "", "publish": False},
]


@pytest.mark.parametrize("body", SPELLINGS)
@pytest.mark.parametrize("publish", [None, True])
def test_a_typed_body_asks_for_what_its_json_asks_for(
    body: dict[str, object], publish: bool | None
) -> None:
    """The HTTP paths read the decoded body; stored params and batch items the JSON. Every
    spelling gives the same request either way, and the job's params read back as it."""
    typed = request_of(msgspec.convert(body, GenerateFields), publish=publish)
    assert typed == parse(body, publish=publish)
    assert GenerateRequest.from_params(typed.to_params()).to_params() == typed.to_params()


def test_a_typed_body_without_a_source_is_refused() -> None:
    for body in ({}, {"text": "   "}, {"title": "only a title"}, {"document_id": ""}):
        with pytest.raises(Invalid) as caught:
            request_of(msgspec.convert(body, GenerateFields))
        assert caught.value.details == {"field": "document_id"}
