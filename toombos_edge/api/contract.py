"""Typed requests and replies: the named msgspec types every route of the table declares.

A route names its JSON body (a :class:`Body`) or its query string (a :class:`Query`); the
pipeline decodes it with msgspec and hands the handler the typed value. A refusal is a 422
(:class:`~toombos_edge.errors.Invalid`) whose message starts with the field's path
(``channels[2]: expected one of email, website, …``); a body that is not JSON at all is a
400. Replies are :class:`Reply` types: they describe the JSON the handlers send (orjson
still encodes it), feed ``/openapi.json`` and, with ``TOOMBOS_VALIDATE_RESPONSES``, check
every answer in the tests (:mod:`.conformance`).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any, Protocol, TypeVar, cast, get_type_hints

import msgspec
import orjson
from aiohttp import web
from msgspec import UNSET, UnsetType

from ..errors import BadRequest, Invalid
from ..keys import Role

T = TypeVar("T")


class Body(msgspec.Struct, kw_only=True):
    """A JSON request body. Unknown fields are ignored: clients send extra ones."""


class Query(msgspec.Struct, kw_only=True):
    """A query string. Values come as text; numbers and booleans are read from it; a
    ``list`` field takes repeated and comma-separated values."""


class Reply(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A JSON reply. Strict: a key a handler adds without its type fails the tests."""


class ErrorInfo(Reply):
    message: str
    code: str
    status: int
    details: Any = None


class ErrorBody(Reply):
    """The one error shape: ``detail`` for the dashboard, ``error`` with the code."""

    detail: str
    error: ErrorInfo


@dataclass(frozen=True, slots=True)
class Media:
    """A reply or body that is not one JSON type: its media types, for the document."""

    types: tuple[str, ...]
    binary: bool = False
    #: Per media type, the msgspec type that describes it: a form's fields, or a JSON reply
    #: among other media (checked like any JSON reply).
    fields: Mapping[str, Any] | None = None


#: A pattern for a name that must hold something besides spaces (``str.strip()`` drops
#: them), read alike by Python's ``re`` and by JSON Schema's ECMA-262 regexes: ECMA's
#: ``\s`` leaves out the control characters Python counts as spaces, so they are named.
NOT_BLANK = r"[^\s\x1c-\x1f\x85]"

Replies = Mapping[int, Any]


class RouteLike(Protocol):
    """What the OpenAPI builder and the reply checks read of a route of the table."""

    @property
    def method(self) -> str: ...
    @property
    def path(self) -> str: ...
    @property
    def role(self) -> Role | None: ...
    @property
    def handler(self) -> Any: ...
    @property
    def body(self) -> Any: ...
    @property
    def query(self) -> Any: ...
    @property
    def replies(self) -> Replies: ...
    @property
    def gated(self) -> bool: ...
    @property
    def probe(self) -> bool: ...


#: A route's handler: ``handler(request)``, or ``handler(request, value)`` with its typed
#: body or query.
TypedHandler = Callable[..., Awaitable[web.StreamResponse]]
Decode = Callable[[web.Request], Awaitable[Any]]


def optional_all(kind: type[Reply], name: str) -> type[Reply]:
    """``kind`` with every key optional (a light list's items carry only the asked ones)."""
    hints = get_type_hints(kind)
    fields = [(n, hints[n] | UnsetType, UNSET) for n in kind.__struct_fields__]
    made = msgspec.defstruct(name, fields, bases=(Reply,), kw_only=True, module=kind.__module__)
    return cast(type[Reply], made)


def replies(ok: Any, status: int = 200, *, errors: tuple[int, ...] = (),
            **more: Any) -> dict[int, Any]:
    """``{status: ok}`` plus the one error shape for ``errors``; ``more`` as ``s503=Type``."""
    out: dict[int, Any] = {status: ok}
    out.update({code: ErrorBody for code in errors})
    out.update({int(name.removeprefix("s")): kind for name, kind in more.items()})
    return out


# --- decoding ---------------------------------------------------------------------------


def decoder(body: Any, query: Any) -> Decode | None:
    """What reads a route's typed input: its ``body`` type (a :class:`Body`; a
    :class:`Media` body the handler reads itself) or its ``query`` type."""
    if isinstance(body, type) and issubclass(body, Body):
        assert query is None, "a route takes a typed body or a typed query, not both"
        body_type: type[Body] = body

        async def read(request: web.Request) -> Any:
            return await read_body(request, body_type)

        return read
    if query is not None:
        query_type: type[Query] = query

        async def parse(request: web.Request) -> Any:
            return decode_query(request.query, query_type)

        return parse
    return None


_DECODERS: dict[Any, msgspec.json.Decoder[Any]] = {}


def _decoder(kind: type[T]) -> msgspec.json.Decoder[T]:
    found = _DECODERS.get(kind)
    if found is None:
        found = _DECODERS[kind] = msgspec.json.Decoder(kind)
    return found


async def read_body(request: web.Request, kind: type[T]) -> T:
    """The request's JSON body as ``kind``; an empty body is ``{}``."""
    raw = await request.read()
    return decode_body(raw if raw.strip() else b"{}", kind)


#: A JSON escape of half a UTF-16 pair, lone or not (:func:`_refuse_lone_surrogates`).
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


#: A JSON escape of NUL (an odd number of backslashes before it: ``\\u0000`` is text).
_NUL_ESCAPE = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")
#: Refused on both backends alike, because PostgreSQL cannot store it in text or jsonb.
NUL_REFUSED = "text may not hold the NUL character (\\u0000)"


def refuse_nul(field: str, text: str) -> None:
    """Raise the 422 for a form field holding NUL, raw or as a JSON escape (``metadata``)."""
    if "\x00" in text or ("\\u0000" in text and _NUL_ESCAPE.search(text.encode())):
        raise Invalid(NUL_REFUSED, {"field": field})


def decode_body(raw: bytes, kind: type[T]) -> T:
    if _SURROGATE_ESCAPE.search(raw):
        _refuse_lone_surrogates(raw)
    if b"\\u0000" in raw and _NUL_ESCAPE.search(raw):
        raise Invalid(NUL_REFUSED, {"field": "body"})
    try:
        value: T = _decoder(kind).decode(raw)
        return value
    except msgspec.ValidationError as exc:
        raise invalid(exc, kind) from None
    except msgspec.DecodeError as exc:
        raise BadRequest(f"request body is not valid JSON: {exc}") from None


def _refuse_lone_surrogates(raw: bytes) -> None:
    """msgspec decodes ``"\\ud800"`` into a str that no UTF-8 encoder takes (SQLite's,
    orjson's): a 500 later. orjson refuses such a body, so it reads the rare body that
    holds a surrogate escape once more, and a lone half is a 400 here."""
    try:
        orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"request body is not valid JSON: {exc}") from None


def convert(data: Any, kind: type[T], *, strict: bool = True) -> T:
    """``data`` (built-in values) as ``kind``; a 422 naming the field when it does not fit."""
    try:
        return msgspec.convert(data, kind, strict=strict)
    except msgspec.ValidationError as exc:
        raise invalid(exc, kind) from None


@cache
def _list_fields(kind: type[Query]) -> frozenset[str]:
    info = msgspec.inspect.type_info(kind)
    assert isinstance(info, msgspec.inspect.StructType)
    return frozenset(f.encode_name for f in info.fields if _is_list(f.type))


def _is_list(info: msgspec.inspect.Type) -> bool:
    if isinstance(info, msgspec.inspect.UnionType):
        return any(_is_list(t) for t in info.types)
    return isinstance(info, msgspec.inspect.ListType)


def decode_query(query: Mapping[str, str], kind: type[T]) -> T:
    """A query string as ``kind``: empty values are absent; list fields take every value,
    split at commas; any other field its first value."""
    lists = _list_fields(kind)  # type: ignore[arg-type]
    data: dict[str, Any] = {}
    for name in query:
        if name in data:
            continue
        if "\x00" in name or any("\x00" in v for v in query.getall(name)):  # type: ignore[attr-defined]
            raise Invalid(NUL_REFUSED, {"field": name})
        if name in lists:
            values = query.getall(name)  # type: ignore[attr-defined]
            data[name] = [p.strip() for v in values for p in v.split(",") if p.strip()]
        elif (value := query[name]) != "":
            data[name] = value
    return convert(data, kind, strict=False)


def given(value: msgspec.Struct) -> dict[str, Any]:
    """The fields a client sent (absent, null and empty lists left out) as built-in values:
    what the services' parsers of stored params (a job's) also take."""
    return {k: v for k, v in msgspec.to_builtins(value).items() if v is not None and v != []}


# --- messages that name the field -------------------------------------------------------

_AT = re.compile(r"^(?P<message>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.DOTALL)
_MISSING = re.compile(r"^Object missing required field `(?P<name>[^`]+)`$")
_ENUM = re.compile(r"^Invalid enum value (?P<value>.+)$")
_STEP = re.compile(r"\.([^.\[]+)|\[(\d+)\]")


def invalid(exc: msgspec.ValidationError, kind: type[Any]) -> Invalid:
    """A 422 from msgspec's refusal: ``path: what was expected`` (``details.field``)."""
    found = _AT.match(str(exc))
    assert found is not None  # the pattern matches any text
    message, path = found["message"], found["path"] or ""
    if (missing := _MISSING.match(message)) is not None:
        path, message = f"{path}.{missing['name']}", "required"
    elif (enum := _ENUM.match(message)) is not None:
        values = _choices(msgspec.inspect.type_info(kind), path)
        message = (f"expected one of {', '.join(map(str, values))}, got {enum['value']}"
                   if values else message)
    field = path.lstrip(".") or "body"
    text = message.replace("`", "")
    return Invalid(f"{field}: {text[:1].lower()}{text[1:]}", {"field": field})


def _choices(info: msgspec.inspect.Type, path: str) -> tuple[Any, ...]:
    """The allowed values of the enum or literal at ``path`` inside ``info``."""
    for name, _index in _STEP.findall(path):
        info = _step(info, name)
    for option in _options(info):
        if isinstance(option, msgspec.inspect.EnumType):
            return tuple(member.value for member in option.cls)
        if isinstance(option, msgspec.inspect.LiteralType):
            return option.values
    return ()


def _options(info: msgspec.inspect.Type) -> tuple[msgspec.inspect.Type, ...]:
    return info.types if isinstance(info, msgspec.inspect.UnionType) else (info,)


def _step(info: msgspec.inspect.Type, name: str) -> msgspec.inspect.Type:
    for option in _options(info):
        if isinstance(option, msgspec.inspect.StructType) and name:
            for field in option.fields:
                if field.encode_name == name:
                    return field.type
        if isinstance(option, msgspec.inspect.ListType | msgspec.inspect.SetType) and not name:
            return option.item_type
        if isinstance(option, msgspec.inspect.DictType) and name:
            return option.value_type
    return msgspec.inspect.AnyType()


# --- every status a route may answer ----------------------------------------------------

#: Any route: 503 while the server stops (a request it gave up on).
EVERY_ROUTE: tuple[int, ...] = (503,)
#: A write may find the disk full.
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def all_replies(method: str, role: Role | None, body: Any, query: Any, declared: Replies,
                *, probe: bool = False) -> dict[int, Any]:
    """``declared``, plus the statuses the pipeline adds: 401/403 for a role, 400/413/422
    for a body, 422 for a query, 507 for a write, 429 but on a probe (the rate limits),
    and :data:`EVERY_ROUTE`."""
    out: dict[int, Any] = dict.fromkeys(EVERY_ROUTE, ErrorBody)
    if not probe:
        out[429] = ErrorBody
    if role is not None:  # 403 also on viewer routes: a token whose role maps to none here
        out[401] = out[403] = ErrorBody
    if body is not None:
        out.update(dict.fromkeys((400, 413, 422), ErrorBody))
    if query is not None:
        out[422] = ErrorBody
    if method in WRITE_METHODS:
        out[507] = ErrorBody
    out.update(declared)
    return dict(sorted(out.items()))
