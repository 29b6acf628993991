"""One OpenAPI document per major version.

A service serves all its majors from one app (``/availability/v1/...`` beside
``/availability/v2/...``), so its ``/schema/openapi.json`` holds them all. A partner
reads one major at a time: keep that major's paths and only the components they
reach; paths outside any major (health, if documented) stay in every one. A document
with a single major comes back unchanged.
"""

from __future__ import annotations

import copy
import re
from typing import Any

_MAJOR = re.compile(r"^/[^/]+/v(\d+)(/|$)")


def major_of(path: str) -> int | None:
    match = _MAJOR.match(path)
    return int(match.group(1)) if match else None


def majors_in(document: dict[str, Any]) -> list[int]:
    return sorted({m for p in document.get("paths") or {} if (m := major_of(p)) is not None})


def for_major(document: dict[str, Any], major: int) -> dict[str, Any]:
    if majors_in(document) == [major]:
        return document
    selected = copy.deepcopy(document)
    paths = selected.get("paths") or {}
    selected["paths"] = {p: item for p, item in paths.items() if major_of(p) in (major, None)}
    components = selected.get("components") or {}
    schemas = components.get("schemas")
    if isinstance(schemas, dict):
        reached = _reached_schemas(selected["paths"], schemas)
        components["schemas"] = {name: s for name, s in schemas.items() if name in reached}
    return selected


def _reached_schemas(root: Any, schemas: dict[str, Any]) -> set[str]:
    prefix = "#/components/schemas/"
    reached: set[str] = set()
    stack = [root]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith(prefix):
                name = ref[len(prefix) :]
                if name not in reached and name in schemas:
                    reached.add(name)
                    stack.append(schemas[name])
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return reached
