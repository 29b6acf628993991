"""Post-processing of the generated OpenAPI document.

Litestar does not carry msgspec's ``forbid_unknown_fields`` into the schema, so a
client (or Schemathesis) would believe unknown fields are accepted. We walk the
request bodies of every route and mark those Structs ``additionalProperties: false``.
"""

from __future__ import annotations

import typing
from typing import Any

import msgspec
from litestar import Litestar
from litestar.routes import HTTPRoute


def _structs_in(annotation: Any, seen: set[type]) -> None:
    if isinstance(annotation, type) and issubclass(annotation, msgspec.Struct):
        if annotation in seen:
            return
        seen.add(annotation)
        for field in msgspec.structs.fields(annotation):
            _structs_in(field.type, seen)
        return
    for arg in typing.get_args(annotation):
        _structs_in(arg, seen)


def _component_key(cls: type) -> list[str]:
    return [cls.__name__, f"{cls.__module__}.{cls.__qualname__}".replace(".", "_")]


def forbid_unknown_fields_in_schema(app: Litestar) -> None:
    bodies: set[type] = set()
    for route in app.routes:
        if not isinstance(route, HTTPRoute):
            continue
        for handler in route.route_handlers:
            data = handler.parsed_fn_signature.parameters.get("data")
            if data is not None:
                _structs_in(data.annotation, bodies)
    components = app.openapi_schema.components.schemas or {}
    for cls in bodies:
        config = getattr(cls, "__struct_config__", None)
        if config is None or not config.forbid_unknown_fields:
            continue
        for key in _component_key(cls):
            if key in components:
                components[key].additional_properties = False


def integer_bounds_as_integers(node: Any) -> None:
    """``minimum: 0.0`` on an integer reads as a float constraint; emit ``0``."""
    if isinstance(node, dict):
        if node.get("type") == "integer":
            for bound in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
                value = node.get(bound)
                if isinstance(value, float) and value.is_integer():
                    node[bound] = int(value)
        for value in node.values():
            integer_bounds_as_integers(value)
    elif isinstance(node, list):
        for value in node:
            integer_bounds_as_integers(value)


def openapi_document(app: Litestar) -> dict[str, Any]:
    """The served document (Litestar caches it); the contracts export uses the same."""
    from litestar._openapi.plugin import OpenAPIPlugin

    document: dict[str, Any] = app.plugins.get(OpenAPIPlugin).provide_openapi_schema()
    return document


def finalize_openapi(app: Litestar) -> None:
    forbid_unknown_fields_in_schema(app)
    integer_bounds_as_integers(openapi_document(app))
