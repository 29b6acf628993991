"""Request bodies decoded strictly, once, in the kernel (ARCHITECTURE.md section 4,
decision 0022): ``build_app`` makes ``StrictJsonRequest`` every service's request class.

Litestar reads a route's ``data`` through ``Request.json()`` and then converts it to
the annotated type with msgspec's lax rules (``"5"`` becomes ``5``), the same pass
that converts query strings. ``StrictJsonRequest.json()`` does the body's part first:

- a Content-Type other than ``application/json`` (``charset=utf-8`` allowed) is 415
  ``/problems/unsupported-media-type``;
- a body that is not strict JSON (``shared.strict_json``) is 400
  ``/problems/malformed-json``;
- the value is converted to the route's ``data`` type with strict rules, so a type
  mismatch is the usual 400 ``/problems/invalid-request`` and Litestar's own lax
  pass receives an instance that it passes through unchanged.

A handler that reads its JSON body itself (the portal's GraphQL) declares
``opt={JSON_BODY: True}`` on its route or controller; ``check_json_body`` (the apps'
``before_request``) applies the same media type and decoding checks before it runs.
A handler that takes the raw request but reads no body says ``{JSON_BODY: False}``
(tests/security/test_malformed_requests.py holds every route to one or the other).
"""

from __future__ import annotations

from typing import Annotated, Any, get_args, get_origin

import msgspec
from litestar import Request
from litestar.enums import RequestEncodingType
from litestar.exceptions import ValidationException
from litestar.handlers import HTTPRouteHandler
from litestar.types import Empty

from shared import strict_json
from shared.problems import PROBLEM_MEDIA_TYPE, ProblemError, problem_response_text

JSON_BODY = "json_body"  # route opt: the handler reads a JSON body itself
METHODS_WITH_BODY = frozenset({"POST", "PUT", "PATCH"})
_PLAIN_JSON = frozenset({"application/json", b"application/json"})


def is_json_media_type(content_type: str | bytes | None) -> bool:
    """``application/json``, with no charset or UTF-8 (RFC 8259 defines no other).
    Structured suffixes (``application/merge-patch+json``) name other semantics that
    Tally does not implement, so they are refused rather than read as plain JSON."""
    if content_type in _PLAIN_JSON:  # what nearly every client sends: no parsing
        return True
    if content_type is None:
        return False
    if isinstance(content_type, bytes):
        content_type = content_type.decode("latin-1")
    media_type, _, parameters = content_type.partition(";")
    if media_type.strip().lower() != "application/json":
        return False
    for parameter in parameters.split(";"):
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "charset" and value.strip().strip('"').lower() not in (
            "utf-8",
            "utf8",
        ):
            return False
    return True


def accepts_json_body(handler: HTTPRouteHandler) -> bool:
    """Whether the route takes a JSON request body: a ``data`` parameter Litestar reads
    as JSON, or the ``JSON_BODY`` opt of a handler that reads it itself."""
    if not handler.http_methods & METHODS_WITH_BODY:
        return False
    if handler.opt.get(JSON_BODY):
        return True
    if handler.parsed_data_field is None:
        return False
    body_kwarg = handler.parsed_data_field.kwarg_definition
    media_type = getattr(body_kwarg, "media_type", RequestEncodingType.JSON)
    return bool(media_type == RequestEncodingType.JSON)


def refuse_media_type(content_type: str | None) -> ProblemError:
    shown = f"'{content_type}'" if content_type else "no Content-Type"
    return ProblemError(
        415,
        "unsupported-media-type",
        f"This operation accepts only 'application/json' bodies (UTF-8); the request sent {shown}.",
    )


def malformed(exc: strict_json.MalformedJson) -> ProblemError:
    return ProblemError(400, "malformed-json", str(exc))


def msgspec_type(data_type: Any) -> Any:
    """``data_type`` with only the ``Annotated`` metadata msgspec reads (its ``Meta``).
    Litestar's ``JSONBody[T]`` annotates ``T`` with its ``Body`` definition, which
    msgspec ignores but must hash to find the type's cached decoding plan: some 40
    microseconds a request (stop 39's profiles), where ``T`` itself hashes at once."""
    if get_origin(data_type) is not Annotated:
        return data_type
    inner, *extras = get_args(data_type)
    metas = tuple(extra for extra in extras if isinstance(extra, msgspec.Meta))
    return Annotated[(inner, *metas)] if metas else inner


class StrictJsonRequest(Request[Any, Any, Any]):
    """Litestar's request with the kernel's strict ``json()``."""

    def _convert(self, value: Any, data_type: Any) -> Any:
        return msgspec.convert(
            value,
            msgspec_type(data_type),
            strict=True,
            str_keys=True,
            dec_hook=self.route_handler.default_deserializer,
        )

    async def json(self) -> Any:
        if self._json is not Empty:
            return self._json
        cached = self._connection_state.json
        if cached is not Empty:
            self._json = cached
            return cached
        content_type = self.headers.get("content-type")
        if not is_json_media_type(content_type):
            raise refuse_media_type(content_type)
        try:
            value = strict_json.decode(await self.body())
        except strict_json.MalformedJson as exc:
            raise malformed(exc) from exc
        data_field = self.route_handler.parsed_data_field
        if data_field is not None:
            value = self._converted(value, data_field.raw)
        self._json = self._connection_state.json = value
        return value

    def _converted(self, value: Any, data_type: Any) -> Any:
        try:
            return self._convert(value, data_type)
        except msgspec.ValidationError as exc:
            refusal = exc
        if "got `float`" in str(refusal):
            # 4.0 is the integer 4 in JSON (and in JSON Schema); retried only here, so
            # bodies that spell integers as integers pay nothing for it.
            try:
                return self._convert(strict_json.integral_floats_as_ints(value), data_type)
            except msgspec.ValidationError as exc:
                refusal = exc
        message, _, where = str(refusal).partition(" - at `")
        error: dict[str, str] = {"message": message, "source": "body"}
        key = where.rstrip("`").removeprefix("$").removeprefix(".")
        if key:
            error["key"] = key
        raise ValidationException(
            detail=f"Validation failed for {self.method} {self.url.path}", extra=[error]
        ) from refusal


async def check_json_body(request: Request[Any, Any, Any]) -> None:
    """``before_request`` of every app: the strict checks for handlers that read their
    JSON body themselves (routes with ``data`` get them when Litestar reads it)."""
    handler = request.route_handler
    if handler.opt.get(JSON_BODY) and request.method in METHODS_WITH_BODY:
        await request.json()


def document_json_bodies(document: dict[str, Any]) -> None:
    """Every operation of the OpenAPI ``document`` that takes a JSON body documents the
    415 answer (the 400 it shares with every other operation)."""
    for operations in document.get("paths", {}).values():
        for operation in operations.values():
            if not isinstance(operation, dict):
                continue
            if "application/json" not in operation.get("requestBody", {}).get("content", {}):
                continue
            operation.setdefault("responses", {}).setdefault(
                "415",
                {
                    "description": problem_response_text(415),
                    "content": {
                        PROBLEM_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}
                    },
                },
            )
