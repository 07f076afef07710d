"""The contract, fuzzed: schemathesis against a real server, with a key of each role.

One server process (a free port, a temporary data dir) serves the whole module. Every
operation of its `/openapi.json` is called with requests generated from the schema itself,
positive and negative, with the key of the role the operation needs (``x-role``), and each
answer is checked: no 5xx, the status, content type and body its schema declares, and no
schema-valid request refused. Nothing here knows the shape of a body: as the schema grows
(bodies, parameters, response schemas) the same run generates and validates more.

Ids that exist (a document, a job, a content item, a spare key, a site page) are made
through the API first and offered for the path parameters of the same name, so that the
found paths (200 and their response schemas) are fuzzed too, not only 404s.
"""

from __future__ import annotations

import json
import os
import re
import urllib.parse
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import hypothesis
import pytest
import requests
import schemathesis
from conftest import ServerProcess, http
from hypothesis import HealthCheck, Phase
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    positive_data_acceptance,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.errors import FailureGroup
from support import eventually

from toombos_edge.routes import ROUTES

pytestmark = pytest.mark.timeout(300)

#: Cases per operation and generation mode: about 3,000 requests in all, well under two
#: minutes on two busy cores (each operation stops sooner when its schema allows fewer).
MAX_EXAMPLES = 20
MODES = (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance, positive_data_acceptance]
ROLES = ("viewer", "operator", "admin")
#: The suite runs the same cases every time (a gate must not pass or fail by chance);
#: TOOMBOS_FUZZ_EXPLORE=1 draws new ones on each run, to look for what they have not met.
EXPLORE = os.environ.get("TOOMBOS_FUZZ_EXPLORE") == "1"

#: Operations not fuzzed at all, with why.
NOT_FUZZED = {
    ("POST", "/admin/restart"): "restarts the server under test (test_restart.py drives it)",
}


def _key(route: Any) -> tuple[str, str]:
    """(method, path) of a route as the schema spells it (``{path:.+}`` is ``{path}``)."""
    return route.method, re.sub(r"\{(\w+)(?::[^}]*)?\}", r"{\1}", route.path)


#: Why a WebSocket endpoint refuses a schema-valid plain GET (the route table knows them).
WEBSOCKET = "a WebSocket endpoint: a plain GET is refused with 400 (test_ws_endpoints.py)"
WEBSOCKETS = {_key(route)[1] for route in ROUTES if route.gated}
#: Why an operation whose schema declares no input may refuse the request it describes.
#: It lapses by itself for each operation whose schema declares a body or a query.
UNDECLARED_INPUT = ("the schema declares no body and no query for it, so every request it "
                    "describes is empty; the handler rightly asks for its fields")


@dataclass
class Live:
    """The server under test, a key of each role, and ids that exist."""

    base: str
    keys: dict[str, str]
    known: dict[str, str]
    session: requests.Session = field(default_factory=requests.Session)

    def headers(self, role: str | None) -> dict[str, str]:
        return {} if role is None else {"Authorization": f"Bearer {self.keys[role]}"}


def _create(base: str, key: str, path: str, body: dict[str, Any], status: int) -> Any:
    got, answer = http("POST", base + path, key=key, body=body)
    assert got == status, (path, answer)
    return answer


def _finished(base: str, key: str, job_id: str, deadline: float = 30.0) -> dict[str, Any]:
    """The job once it ended (polling a condition with a deadline)."""
    def job() -> dict[str, Any] | None:
        found: dict[str, Any] = http("GET", f"{base}/api/jobs/{job_id}", key=key)[1]
        return found if found["status"] in {"completed", "partial", "failed", "cancelled"} else None

    return eventually(job, deadline, f"job {job_id} to end")


def _seed(base: str, admin: str) -> dict[str, str]:
    """Make one of each thing a path can name; returns path parameter → an existing id."""
    doc = _create(base, admin, "/api/documents",
                  {"title": "Fuzzed", "text": "A document the fuzzer may read and edit."}, 201)
    job = _create(base, admin, "/api/v2/content/sync",
                  {"document_id": doc["id"], "channels": ["email", "website"]}, 202)
    done = _finished(base, admin, job["job_id"])
    content_id = done["results"]["website"]["content_id"]
    content = http("GET", f"{base}/api/v2/content/{content_id}", key=admin)[1]
    spare = _create(base, admin, "/admin/keys", {"name": "spare", "role": "viewer"}, 201)
    return {"doc_id": doc["id"], "job_id": job["job_id"], "content_id": content_id,
            "key_id": spare["id"], "slug": content["slug"], "component": "database"}


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    # The rate limits stay on, with quotas no fuzzing run reaches: thousands of requests a
    # minute per key, and a wrong key on every protected operation (test_ratelimit.py
    # holds the limits to their figures).
    quotas = {f"TOOMBOS_RATE_LIMIT_{who}": "1000000000"
              for who in ("VIEWER", "OPERATOR", "ADMIN", "ANONYMOUS", "FAILED_AUTH")}
    server = ServerProcess(Path(tmp_path_factory.mktemp("fuzz")) / "data", env=quotas).start()
    try:
        admin = server.admin_key()
        keys = {"admin": admin}
        for role in ("viewer", "operator"):
            keys[role] = _create(server.base, admin, "/admin/keys",
                                 {"name": f"fuzz {role}", "role": role}, 201)["secret"]
        yield Live(server.base, keys, _seed(server.base, admin))
    finally:
        server.stop()


@pytest.fixture(scope="module")
def schema(live: Live) -> Any:
    return schemathesis.openapi.from_url(live.base + "/openapi.json")


def _role(operation: Any) -> str | None:
    """The role an operation needs: its ``x-role``, admin when it is secured without one."""
    raw = operation.definition.raw
    if not raw.get("security", operation.schema.raw_schema.get("security")):
        return None
    role: str = raw.get("x-role", "admin")
    return role


#: Operations that refuse some requests their schema allows, each with why. Cross-field
#: rules are what JSON Schema cannot say (or says in ways a client generator ignores);
#: text formats are parsed by the server and given in the schema's descriptions only.
CROSS_FIELD = {
    "/api/v1/generate", "/api/v1/generate/email", "/api/v1/generate/social",
    "/api/v2/content/generate", "/api/v2/content/sync", "/api/v1/batch/generate",
    "/api/v2/batch/generate", "/api/v2/content/batch", "/api/v1/preview",
}
REFUSES_VALID = {
    **dict.fromkeys(CROSS_FIELD, "a request names a stored document_id or sends text, one of "
                                 "the two, and a document with text (cross-field, and state)"),
    "/api/jobs": "a job's kind must be one registered on this server (plugins add kinds), "
                 "and its params are the kind's own; filters' from/to and cursor are parsed "
                 "text (ISO times, an opaque cursor)",
    "/api/v2/jobs": "filters' from/to are ISO times and cursor an opaque token, parsed text",
    "/api/jobs/export": "filters' from/to are ISO times, parsed text",
    "/api/jobs/batch/cancel": "a batch names job ids or a filter, one of the two (cross-field)",
    "/api/jobs/batch/retry": "a batch names job ids or a filter, one of the two (cross-field)",
    "/api/activity": "since/until are ISO times and cursor an opaque token, parsed text",
    "/api/analytics": "start_date/end_date are ISO dates, parsed text",
    "/api/v2/analytics": "start_date/end_date are ISO dates, parsed text",
    "/api/v2/analytics/jobs": "start_date/end_date are ISO dates, parsed text",
    "/api/search": "q is FTS5 syntax in mode=fts, parsed by SQLite",
    "/api/documents": "text or content, one of the two (cross-field); format is one of the "
                      "readers' names or a media type, parsed text",
    "/api/v1/documents": "text or content, one of the two (cross-field); format is one of "
                         "the readers' names or a media type, parsed text",
    "/api/documents/{doc_id}": "an update sends at least one field (cross-field)",
    "/api/v1/documents/{doc_id}": "an update sends at least one field (cross-field)",
    "/api/projects": "a name of spaces only is none; metadata as text must be a JSON object",
    "/api/v1/projects": "a name of spaces only is none; metadata as text must be a JSON "
                        "object",
    "/api/projects/{project_id}": "an update sends at least one field (cross-field)",
    "/api/v1/projects/{project_id}": "an update sends at least one field (cross-field)",
    "/api/v2/content/{content_id}": "an edit changes at least one field (cross-field)",
    "/api/critical/rollback": "names content_id or job_id, one of the two (cross-field), "
                              "and a version that exists (state)",
    "/api/critical/emergency-publish": "names stored content or sends a body and channel "
                                       "(cross-field)",
    "/api/v1/cache/invalidate": "names keys, a pattern or tags, at least one (cross-field)",
    "/api/v2/cache/invalidate": "names keys, a pattern or tags, at least one (cross-field)",
    "/api/v2/content/{content_id}/publish": "content whose channel has no sink configured "
                                            "is refused (state)",
    "/api/ingest": "format is one of the readers' names, metadata as text must be a JSON "
                   "object, a project_id must name a project (state)",
}


def _declares_input(operation: Any) -> bool:
    raw = operation.definition.raw
    return "requestBody" in raw or any(
        p.get("in") == "query" for p in raw.get("parameters", []))


#: aiohttp refuses a request line over 8,190 bytes before any route runs, in text/plain.
LONG_URL = "a request line over 8,190 bytes is refused by aiohttp's parser as text/plain"


def _request_line(case: Any) -> int:
    query = urlencode(case.query or {}, doseq=True)
    return len(case.formatted_path) + len(query)


#: The API refuses text holding NUL on both backends alike (PostgreSQL stores no NUL in
#: text or jsonb): a 422 saying so, which the schema's plain strings do not tell.
NUL_TEXT = "text holding the NUL character (\\u0000) is refused, as PostgreSQL cannot store it"


def _holds_nul(case: Any) -> bool:
    sent = [case.body, case.query, case.path_parameters]
    return "\\u0000" in json.dumps(sent, default=str)


def _excused(operation: Any, case: Any, failure: BaseException) -> str | None:
    """Why this failure is expected today, or None when it is a defect."""
    if _request_line(case) > 8000:
        return LONG_URL
    if getattr(failure, "code", None) != "ST202":  # only refusals of valid data are excused
        return None
    if _holds_nul(case):
        return NUL_TEXT
    if operation.path in WEBSOCKETS:
        return WEBSOCKET
    if not _declares_input(operation):
        return UNDECLARED_INPUT
    return REFUSES_VALID.get(operation.path)


@dataclass
class Tally:
    cases: Counter[str] = field(default_factory=Counter)
    excused: dict[str, set[str]] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    nothing_to_negate: set[str] = field(default_factory=set)
    #: operation → status class (2, 4, …) → answers
    answered: defaultdict[str, Counter[int]] = field(default_factory=lambda: defaultdict(Counter))


def _operations(schema: Any) -> list[Any]:
    """Every operation but the ones not fuzzed; deletes last, so that the known ids
    serve every other operation first."""
    ops = [result.ok() for result in schema.get_all_operations()]
    ops = [op for op in ops if (op.method.upper(), op.path) not in NOT_FUZZED]
    return sorted(ops, key=lambda op: op.method.upper() == "DELETE")


def _strategy(operation: Any, mode: GenerationMode, known: dict[str, str]) -> Any:
    drawn = operation.as_strategy(generation_mode=mode)
    names = {p.name for p in operation.path_parameters}
    existing = {name: value for name, value in known.items() if name in names}
    if not existing:
        return drawn
    return st.one_of(drawn, operation.as_strategy(generation_mode=mode,
                                                  path_parameters=existing))


def _fuzz(live: Live, operation: Any, mode: GenerationMode, tally: Tally) -> None:
    headers = live.headers(_role(operation))

    @hypothesis.given(case=_strategy(operation, mode, live.known))
    @hypothesis.settings(max_examples=MAX_EXAMPLES, deadline=None, database=None,
                         derandomize=not EXPLORE, phases=[Phase.explicit, Phase.generate],
                         suppress_health_check=list(HealthCheck),
                         verbosity=hypothesis.Verbosity.quiet)
    def run(case: Any) -> None:
        tally.cases[mode.value] += 1
        try:
            response = case.call(base_url=live.base, session=live.session, headers=headers)
            tally.answered[operation.label][response.status_code // 100] += 1
            case.validate_response(response, checks=CHECKS, headers=headers)
        except FailureGroup as group:
            _record(operation, case, list(group.exceptions), tally)
        except AssertionError as failure:  # one failed check
            _record(operation, case, [failure], tally)

    try:
        run()
    except hypothesis.errors.Unsatisfiable:
        # Nothing in this operation's schema can be made invalid (no parameter, no body).
        assert mode is GenerationMode.NEGATIVE, operation.label
        tally.nothing_to_negate.add(operation.label)


def _record(operation: Any, case: Any, failures: list[BaseException], tally: Tally) -> None:
    for failure in failures:
        reason = _excused(operation, case, failure)
        if reason is not None:
            tally.excused.setdefault(reason, set()).add(operation.label)
        else:
            title = getattr(failure, "title", type(failure).__name__)
            tally.failures.append(f"{operation.label}: {title}: {failure}\n"
                                  f"  {case.as_curl_command()}")


def test_every_operation_holds_its_contract(live: Live, schema: Any) -> None:
    """No 5xx, answers as declared, no schema-valid request refused, but for the cases
    excused above with their reason."""
    tally = Tally()
    operations = _operations(schema)
    for operation in operations:
        for mode in MODES:
            _fuzz(live, operation, mode, tally)
    assert not tally.failures, "\n".join(sorted(set(tally.failures)))
    fuzzed = {(op.method.upper(), op.path) for op in operations}
    # Every route, but those not fuzzed and the schema's own (schemathesis leaves it out).
    assert fuzzed == {_key(r) for r in ROUTES} - set(NOT_FUZZED) - {("GET", "/openapi.json")}
    assert sum(tally.cases.values()) >= len(operations) * len(MODES)
    # Only refusals of the kinds named above were excused, and only these (printed with -s).
    print(f"cases: {dict(tally.cases)}")
    for reason, labels in tally.excused.items():
        print(f"excused ({reason}): {len(labels)}: {', '.join(sorted(labels))}")
    assert set(tally.excused) <= {WEBSOCKET, UNDECLARED_INPUT, LONG_URL, NUL_TEXT,
                                  *REFUSES_VALID.values()}
    # The ids made first reached the found paths: each read of one answered 2xx at least once.
    reads = [op.label for op in operations if op.method.upper() == "GET"
             and op.path_parameters and op.path not in WEBSOCKETS
             and {p.name for p in op.path_parameters} <= set(live.known)]
    assert reads and all(tally.answered[label][2] for label in reads), {
        label: dict(tally.answered[label]) for label in reads}


# --- authentication, by the route table (what the server enforces) -----------------------


def _url(base: str, path: str) -> str:
    filled = re.sub(r"\{(\w+)(?::[^}]*)?\}", "fuzz", path)
    return base + urllib.parse.quote(filled)


def _status(live: Live, method: str, path: str, role: str | None, *,
            headers: dict[str, str] | None = None) -> int:
    sent = live.headers(role) if headers is None else headers
    return live.session.request(method, _url(live.base, path), headers=sent, timeout=10).status_code


def _protected() -> list[Any]:
    """Routes that need a key on a server with the default settings (/metrics too)."""
    return [r for r in ROUTES if r.role is not None and (r.method, r.path) not in NOT_FUZZED]


def _answers(live: Live, headers: dict[str, str]) -> dict[str, int]:
    return {f"{r.method} {r.path}": _status(live, r.method, r.path, None, headers=headers)
            for r in _protected()}


def test_every_protected_operation_answers_401_without_a_key(live: Live) -> None:
    without = _answers(live, {})
    assert len(without) > 70 and set(without.values()) == {401}, without
    wrong = _answers(live, {"Authorization": "Bearer tbe_not-a-key-of-this-server"})
    assert set(wrong.values()) == {401}, wrong


def test_every_operation_refuses_a_lower_role_with_403(live: Live) -> None:
    refused, checked = {}, 0
    for route in _protected():
        for lower in ROLES[:ROLES.index(route.role.name)]:
            checked += 1
            status = _status(live, route.method, route.path, lower)
            if status != 403:
                refused[f"{route.method} {route.path} as {lower}"] = status
    assert not refused and checked > 40, refused


def test_the_schema_names_each_operations_role(schema: Any) -> None:
    """What the fuzzing keys by: each secured operation's role, as the route table has it."""
    table = {_key(r): None if r.role is None else r.role.name for r in ROUTES}
    paths = schema.raw_schema["paths"]
    declared = {(method.upper(), path): op.get("x-role") if op.get("security") else None
                for path, item in paths.items() for method, op in item.items()}
    assert declared == table


# --- stateful: the schema's links followed (create → get → update → delete) ---------------

#: Scenarios of linked calls, and the most calls in one.
SCENARIOS, STEPS = 40, 6


def test_linked_operations_hold_their_contract(live: Live, schema: Any) -> None:
    """Schemathesis follows the links of /openapi.json from the operations that make
    things (jobs, documents, keys, content) to those that read, change and delete them."""
    tally, followed = Tally(), Counter[str]()

    class Scenario(schema.as_state_machine()):  # type: ignore[misc]
        def teardown(self) -> None:
            tally.cases["scenarios"] += 1

        def step(self, input: Any) -> Any:
            if input.transition is not None and input.is_applied:
                followed[input.transition.id] += 1
            return super().step(input)

        def get_call_kwargs(self, case: Any) -> dict[str, Any]:
            return {"base_url": live.base, "session": live.session,
                    "headers": live.headers(_role(case.operation))}

        def validate_response(self, response: Any, case: Any, *_: Any, **kwargs: Any) -> None:
            tally.cases["stateful"] += 1
            try:
                case.validate_response(response, checks=CHECKS, headers=kwargs.get("headers"))
            except FailureGroup as group:
                _record(case.operation, case, list(group.exceptions), tally)
            except AssertionError as failure:
                _record(case.operation, case, [failure], tally)

    for _run in range(5):
        left = SCENARIOS - tally.cases["scenarios"]
        if left <= 0:
            break
        try:
            Scenario.run(settings=hypothesis.settings(
                max_examples=left, stateful_step_count=STEPS, deadline=None, database=None,
                derandomize=not EXPLORE, phases=[Phase.generate],
                suppress_health_check=list(HealthCheck),
                verbosity=hypothesis.Verbosity.quiet))
        except hypothesis.errors.Flaky:
            # The server is real and keeps state: a prefix of calls Hypothesis replays may
            # fill a bundle once and not again (a job already ended, a key already revoked).
            # Failures are tallied as they happen, so such a run ends early and another goes
            # on (schemathesis's own runner does the same).
            continue
    assert not tally.failures, "\n".join(sorted(set(tally.failures)))
    print(f"stateful: {dict(tally.cases)}, links followed: {dict(followed)}")
    assert tally.cases["scenarios"] >= SCENARIOS // 2
    assert followed  # at least the job links: POST /api/ingest needs no body
