"""Examples for every JSON request and answer body of a contract, derived from its
schema so they can never drift from it: a field's own example or enum first, else a
value shaped by the field's name and constraints, or none when a pattern would not
match. tests/contract/test_examples.py validates every published example."""

from __future__ import annotations

import re
from typing import Any

_MAX_DEPTH = 24  # $ref, oneOf and array each take a level
_SKIP = object()  # no example can be made for this schema

_NAMED_STRINGS = {
    "sku": "SKU-1001",
    "currency": "USD",
    "customer_id": "CUST-1001",
    "warehouse_id": "WH-EAST",
    "location_id": "WH-EAST",
    "order_id": "SO-1001",
    "lot": "LOT-2026-11",
    "carrier": "UPS",
    "tracking_number": "1Z999AA10123456784",
    "channel": "b2b_portal",
    "customer_group": "strategic",
    "region": "us-east",
    "ship_to": "us-east",
    "base_uom": "EA",
    "name": "Example name",
    "reason": "counted after a damaged pallet was removed",
    "reference": "DOC-1001",
}
_NAMED_INTEGERS = {"amount_minor": 1250, "quantity": 4}
_FORMATS = {
    "date-time": "2026-11-23T12:00:00Z",
    "date": "2026-11-23",
    "uri": "https://partner.example/callback",
    "email": "ops@partner.example",
    "uuid": "0192f5d2-6c1e-7a4b-9a57-3f0c2d1e4b5a",
}


def add_examples(document: dict[str, Any]) -> None:
    components = document.get("components", {})
    for operations in document.get("paths", {}).values():
        for operation in operations.values():
            if not isinstance(operation, dict):
                continue
            body = operation.get("requestBody", {}).get("content", {})
            _fill(body.get("application/json"), components)
            for status, response in operation.get("responses", {}).items():
                if str(status).startswith("2"):
                    _fill(response.get("content", {}).get("application/json"), components)


def _fill(media: dict[str, Any] | None, components: dict[str, Any]) -> None:
    if not media or "schema" not in media or "example" in media or "examples" in media:
        return
    value = _example(media["schema"], components, "", 0)
    if value is not _SKIP:
        media["example"] = value


def _example(schema: Any, components: dict[str, Any], name: str, depth: int) -> Any:
    if not isinstance(schema, dict) or depth > _MAX_DEPTH:
        return _SKIP
    for key in ("examples", "enum"):
        if schema.get(key):
            return schema[key][0]
    for key in ("example", "const"):
        if key in schema:
            return schema[key]
    if "$ref" in schema:
        target = schema["$ref"].rsplit("/", 1)[-1]
        return _example(components.get("schemas", {}).get(target), components, name, depth + 1)
    for key in ("oneOf", "anyOf"):
        if key in schema:
            branches = [b for b in schema[key] if b.get("type") != "null"]
            return _example(branches[0], components, name, depth + 1) if branches else None
    return _example_of_type(schema, components, name, depth)


def _example_of_type(
    schema: dict[str, Any], components: dict[str, Any], name: str, depth: int
) -> Any:
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object" or "properties" in schema:
        return _object(schema, components, depth)
    if kind == "array":
        item = _example(schema.get("items", {}), components, name, depth + 1)
        return _SKIP if item is _SKIP else [item] * max(1, schema.get("minItems", 1))
    if kind in ("integer", "number"):
        return _number(schema, name)
    if kind == "boolean":
        return False
    if kind == "string":
        return _string(schema, name)
    if kind == "null":
        return None
    return _SKIP


def _object(schema: dict[str, Any], components: dict[str, Any], depth: int) -> Any:
    found: dict[str, Any] = {}
    for prop, sub in schema.get("properties", {}).items():
        value = _example(sub, components, prop, depth + 1)
        if value is _SKIP:
            if prop in schema.get("required", ()):
                return _SKIP
            continue
        found[prop] = value
    return found


def _number(schema: dict[str, Any], name: str) -> int:
    value = _NAMED_INTEGERS.get(name, 1)
    if "minimum" in schema:
        value = max(value, int(schema["minimum"]))
    if "exclusiveMinimum" in schema:
        value = max(value, int(schema["exclusiveMinimum"]) + 1)
    if "maximum" in schema:
        value = min(value, int(schema["maximum"]))
    return value


def _string(schema: dict[str, Any], name: str) -> Any:
    if schema.get("format") in _FORMATS:
        return _FORMATS[schema["format"]]
    if name in _NAMED_STRINGS:
        value = _NAMED_STRINGS[name]
    elif name.endswith("_id"):
        value = f"{name[:-3].upper().replace('_', '-')}-1001"
    else:
        value = "example"
    minimum, maximum = schema.get("minLength", 0), schema.get("maxLength")
    if len(value) < minimum:
        value = value + "x" * (minimum - len(value))
    if maximum is not None:
        value = value[:maximum]
    pattern = schema.get("pattern")
    if pattern and not re.search(pattern, value):
        return _SKIP
    return value
