"""Post-processing of the generated OpenAPI document.

Litestar does not carry msgspec's ``forbid_unknown_fields`` into the schema, so a
client (or Schemathesis) would believe unknown fields are accepted. We walk the
request bodies of every route and mark those Structs ``additionalProperties: false``.

Two more things the decorators cannot say: the OpenAPI ``links`` that chain one answer
into the next call (Schemathesis's stateful phase follows them), and the deprecation
headers every answer of a deprecated major carries (shared/versions.py).
"""

from __future__ import annotations

import typing
from collections.abc import Callable
from functools import cache
from typing import Any

import msgspec
from litestar import Litestar
from litestar._openapi.plugin import OpenAPIPlugin
from litestar.openapi.spec import OpenAPI, Reference
from litestar.routes import HTTPRoute

from shared.openapi_examples import add_examples
from shared.versions import VERSIONS, deprecation_headers


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


def _request_body_structs(app: Litestar) -> set[type]:
    bodies: set[type] = set()
    for route in app.routes:
        if not isinstance(route, HTTPRoute):
            continue
        for handler in route.route_handlers:
            data = handler.parsed_fn_signature.parameters.get("data")
            if data is not None:
                _structs_in(data.annotation, bodies)
    return bodies


def forbid_unknown_fields_in_schema(app: Litestar, openapi: OpenAPI) -> None:
    components = openapi.components.schemas or {}
    for cls in _request_body_structs(app):
        for key in _component_key(cls):
            if key in components:
                optional_bounds(cls, components[key])
                list_item_bounds(cls, components[key])
        config = getattr(cls, "__struct_config__", None)
        if config is None or not config.forbid_unknown_fields:
            continue
        for key in _component_key(cls):
            if key in components:
                components[key].additional_properties = False


_BOUNDS = {"ge": "minimum", "gt": "exclusive_minimum", "le": "maximum", "lt": "exclusive_maximum"}


def optional_bounds(cls: type, schema: Any) -> None:
    """Litestar drops a zero bound of an optional field (``Annotated[int, Meta(ge=0)] |
    None`` documents ``maximum`` only), so a client may send -1 and get a 400: restore
    the numeric bounds msgspec enforces."""
    properties = schema.properties or {}
    for field in msgspec.structs.fields(cls):
        prop = properties.get(field.encode_name)
        variants = typing.get_args(field.type)
        if prop is None or type(None) not in variants:
            continue
        for variant in variants:
            for meta in typing.get_args(variant)[1:]:
                if not isinstance(meta, msgspec.Meta):
                    continue
                for source, target in _BOUNDS.items():
                    value = getattr(meta, source)
                    if value is not None and getattr(prop, target, None) is None:
                        setattr(prop, target, value)


_STRING_BOUNDS = ("min_length", "max_length", "pattern")


def list_item_bounds(cls: type, schema: Any) -> None:
    """Litestar documents a list of constrained strings (``list[Sku]``) as a list of any
    strings, so a client may send ``""`` and get a 400: restore the item's length and
    pattern that msgspec enforces."""
    properties = schema.properties or {}
    for field in msgspec.structs.fields(cls):
        items = getattr(properties.get(field.encode_name), "items", None)
        listed = _unannotated(field.type)
        if items is None or isinstance(items, Reference) or typing.get_origin(listed) is not list:
            continue
        (item,) = typing.get_args(listed)
        if typing.get_origin(item) is not typing.Annotated:
            continue
        for meta in typing.get_args(item)[1:]:
            if isinstance(meta, msgspec.Meta):
                for bound in _STRING_BOUNDS:
                    value = getattr(meta, bound)
                    if value is not None and getattr(items, bound, None) is None:
                        setattr(items, bound, value)


def _unannotated(annotation: Any) -> Any:
    if typing.get_origin(annotation) is typing.Annotated:
        return typing.get_args(annotation)[0]
    return annotation


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
    document: dict[str, Any] = app.plugins.get(OpenAPIPlugin).provide_openapi_schema()
    return document


# (method, path, status) of an answer -> its links: name -> (target operationId, the
# target's parameters as runtime expressions). A link is added only when the document
# has both ends. Links stay inside one document, so "receipt -> availability" (two
# services) is spelled as receipt -> the receipt and the warehouse's stock.
LINKS: dict[tuple[str, str, str], dict[str, tuple[str, dict[str, str]]]] = {
    ("post", "/orders/v1/orders", "201"): {
        "GetOrder": ("getOrder", {"order_id": "$response.body#/order_id"}),
        "CancelOrder": ("cancelOrder", {"order_id": "$response.body#/order_id"}),
    },
    ("post", "/wms/v1/receipts", "201"): {
        "GetReceipt": ("getReceipt", {"receipt_id": "$response.body#/receipt_id"}),
        "ListReceivedStock": (
            "listStock",
            {
                "sku": "$response.body#/lines/0/sku",
                "warehouse_id": "$response.body#/warehouse_id",
            },
        ),
    },
}


def add_links(document: dict[str, Any]) -> None:
    paths = document.get("paths", {})
    operation_ids = {
        op.get("operationId")
        for ops in paths.values()
        for op in ops.values()
        if isinstance(op, dict)
    }
    for (method, path, status), links in LINKS.items():
        response = paths.get(path, {}).get(method, {}).get("responses", {}).get(status)
        if response is None:
            continue
        found = {
            name: {"operationId": target, "parameters": parameters}
            for name, (target, parameters) in links.items()
            if target in operation_ids
        }
        if found:
            response["links"] = found


def document_deprecation(document: dict[str, Any]) -> None:
    """Operations of a deprecated major are ``deprecated`` and document its headers."""
    for version in VERSIONS:
        headers = deprecation_headers(version)
        if not headers:
            continue
        described = {
            "Deprecation": f"RFC 9745: when {version.name} was deprecated (@unix-time).",
            "Sunset": f"RFC 8594: the last day {version.name} is served (HTTP-date).",
            "Link": "The successor version (rel=successor-version) and the deprecation notes.",
        }
        fields = {
            name: {
                "description": described.get(name, name),
                "required": True,
                "schema": {"type": "string", "examples": [value]},
            }
            for name, value in headers.items()
        }
        for path, operations in document.get("paths", {}).items():
            if not path.startswith(f"{version.base_path}/"):
                continue
            for operation in operations.values():
                if not isinstance(operation, dict) or "responses" not in operation:
                    continue
                operation["deprecated"] = True
                for response in operation["responses"].values():
                    response["headers"] = {**response.get("headers", {}), **fields}


DocumentStep = Callable[[dict[str, Any]], None]


def finalize_openapi(app: Litestar, *more: DocumentStep) -> None:
    """The app's document gets the steps above, then ``more``, when it is first built:
    on the first request for it or ``openapi_document``, not when the app is made
    (building it is most of the cost of making an app: 0.6 s of the ERP's 0.9 s)."""
    plugin = app.plugins.get(OpenAPIPlugin)
    plugin.__class__ = _finishing_plugin(more)


@cache
def _finishing_plugin(more: tuple[DocumentStep, ...]) -> type[OpenAPIPlugin]:
    steps = (integer_bounds_as_integers, add_links, document_deprecation, add_examples, *more)

    class FinishingOpenAPIPlugin(OpenAPIPlugin):
        """Litestar's plugin (it caches the document it builds), finishing it once."""

        __slots__ = ()

        def provide_openapi(self) -> OpenAPI:
            if not self._openapi:
                openapi = self._build_openapi()
                forbid_unknown_fields_in_schema(self.app, openapi)
                self._openapi = openapi
            return self._openapi

        def provide_openapi_schema(self) -> dict[str, Any]:
            if not self._openapi_schema:
                document = self.provide_openapi().to_schema()
                for step in steps:
                    step(document)
                self._openapi_schema = document
            return self._openapi_schema

    return FinishingOpenAPIPlugin
