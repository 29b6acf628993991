"""Breaking changes between two OpenAPI 3.1 documents of one major version.

A change breaks a consumer when a request that the old contract accepted is refused
by the new one, or when an answer the new contract allows was impossible under the
old one (a missing field, a new type). Adding optional things never breaks.

Requests are compared "can the new side still accept everything the old accepted";
responses "does the new side still promise everything the old promised". ``$ref``s
are resolved against each document's own components; a recursive schema is
followed until it meets a pair of references already being compared.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

Direction = Literal["request", "response"]
Json = dict[str, Any]

METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")
# Lower bounds that must not rise and upper bounds that must not fall, on requests.
LOWER_BOUNDS = ("minimum", "exclusiveMinimum", "minLength", "minItems", "minProperties")
UPPER_BOUNDS = ("maximum", "exclusiveMaximum", "maxLength", "maxItems", "maxProperties")
_PATH_PARAM = re.compile(r"\{[^}]*\}")


@dataclass(frozen=True, slots=True, order=True)
class BreakingChange:
    where: str  # "POST /orders/v1/orders request body .lines[].quantity"
    rule: str  # stable name, e.g. "removed-operation"
    detail: str

    def __str__(self) -> str:
        return f"{self.where}: {self.detail} [{self.rule}]"


class _Document:
    """One side of the comparison: resolves ``$ref``s within the document."""

    def __init__(self, document: Json) -> None:
        self.document = document

    def resolve(self, node: Any) -> tuple[Any, str | None]:
        """The node behind any chain of ``$ref``s, and the last reference followed."""
        ref = None
        seen: set[str] = set()
        while isinstance(node, dict) and isinstance(node.get("$ref"), str):
            ref = node["$ref"]
            if ref in seen or not ref.startswith("#/"):
                break
            seen.add(ref)
            target: Any = self.document
            for part in ref[2:].split("/"):
                part = part.replace("~1", "/").replace("~0", "~")
                target = target.get(part) if isinstance(target, dict) else None
            if target is None:
                break
            node = target
        return node, ref


def breaking_changes(old: Json, new: Json) -> list[BreakingChange]:
    """Every change from ``old`` to ``new`` that can break a consumer of ``old``."""
    return sorted(set(_Comparison(old, new).run()))


class _Comparison:
    def __init__(self, old: Json, new: Json) -> None:
        self.old = _Document(old)
        self.new = _Document(new)
        self.found: list[BreakingChange] = []
        # Reference pairs being compared further up: a recursive schema stops there.
        self._open: set[tuple[str | None, str | None, Direction]] = set()

    def report(self, where: str, rule: str, detail: str) -> None:
        self.found.append(BreakingChange(where, rule, detail))

    def run(self) -> list[BreakingChange]:
        old_paths = _paths_by_shape(self.old.document)
        new_paths = _paths_by_shape(self.new.document)
        for shape, (path, old_item) in old_paths.items():
            if shape not in new_paths:
                self.report(path, "removed-path", "the path is gone")
                continue
            new_item = new_paths[shape][1]
            for method in METHODS:
                if method not in old_item:
                    continue
                where = f"{method.upper()} {path}"
                if method not in new_item:
                    self.report(where, "removed-operation", "the operation is gone")
                    continue
                self.operation(where, old_item, new_item, method)
        return self.found

    def operation(self, where: str, old_item: Json, new_item: Json, method: str) -> None:
        old_op, new_op = old_item[method], new_item[method]
        self.parameters(
            where, _parameters(self.old, old_item, old_op), _parameters(self.new, new_item, new_op)
        )
        self.request_body(where, old_op.get("requestBody"), new_op.get("requestBody"))
        self.responses(where, old_op.get("responses") or {}, new_op.get("responses") or {})
        self.security(
            where, _security(self.old.document, old_op), _security(self.new.document, new_op)
        )

    def parameters(
        self, where: str, old: dict[tuple[str, str], Json], new: dict[tuple[str, str], Json]
    ) -> None:
        for key, parameter in new.items():
            name = f"{key[0]} parameter '{parameter.get('name', key[1])}'"
            before = old.get(key)
            if before is None:
                if parameter.get("required"):
                    self.report(where, "new-required-parameter", f"new required {name}")
                continue
            if parameter.get("required") and not before.get("required"):
                self.report(where, "new-required-parameter", f"{name} is now required")
            if "schema" in before and "schema" in parameter:
                self.schema(f"{where} {name}", before["schema"], parameter["schema"], "request")
        for key, parameter in old.items():
            if key not in new and key[0] != "path":
                name = f"{key[0]} parameter '{parameter.get('name', key[1])}'"
                self.report(
                    where,
                    "removed-parameter",
                    f"{name} is gone (callers sending it lose its effect)",
                )

    def request_body(self, where: str, old_ref: Any, new_ref: Any) -> None:
        old, _ = self.old.resolve(old_ref)
        new, _ = self.new.resolve(new_ref)
        if not isinstance(new, dict):
            return
        if new.get("required") and not (isinstance(old, dict) and old.get("required")):
            self.report(where, "new-required-body", "a request body is now required")
        if not isinstance(old, dict):
            return
        old_content, new_content = old.get("content") or {}, new.get("content") or {}
        for media_type, old_media in old_content.items():
            new_media = new_content.get(media_type)
            if new_media is None:
                self.report(
                    where, "removed-media-type", f"request body {media_type} is no longer accepted"
                )
            elif "schema" in old_media and "schema" in new_media:
                self.schema(
                    f"{where} request body", old_media["schema"], new_media["schema"], "request"
                )

    def responses(self, where: str, old: Json, new: Json) -> None:
        for status, old_ref in old.items():
            if not str(status).startswith(("2", "3")):
                continue  # documenting fewer errors breaks no one
            old_response, _ = self.old.resolve(old_ref)
            new_response, _ = self.new.resolve(new.get(status))
            if not isinstance(new_response, dict):
                self.report(where, "removed-response", f"the {status} answer is gone")
                continue
            for header in old_response.get("headers") or {}:
                new_headers = {h.lower() for h in new_response.get("headers") or {}}
                if header.lower() not in new_headers:
                    self.report(
                        where, "removed-response-header", f"{status} answer lost header {header}"
                    )
            old_content = old_response.get("content") or {}
            new_content = new_response.get("content") or {}
            for media_type, old_media in old_content.items():
                new_media = new_content.get(media_type)
                if new_media is None:
                    self.report(
                        where,
                        "removed-media-type",
                        f"{status} answer no longer comes as {media_type}",
                    )
                elif "schema" in old_media and "schema" in new_media:
                    self.schema(
                        f"{where} {status} response",
                        old_media["schema"],
                        new_media["schema"],
                        "response",
                    )

    def security(self, where: str, old: list[Json], new: list[Json]) -> None:
        if not new:
            return  # no requirement at all accepts every caller
        if not old:
            self.report(where, "security-added", "the operation now requires authorization")
            return
        for alternative in old:
            if any(_satisfied_by(alternative, candidate) for candidate in new):
                continue
            extra = sorted(
                {
                    f"{scheme}:{scope}" if scopes else scheme
                    for candidate in new
                    for scheme, scopes in candidate.items()
                    for scope in (scopes or [""])
                    if scheme not in alternative or (scope and scope not in alternative[scheme])
                }
            )
            self.report(
                where,
                "security-changed",
                f"callers holding {_describe(alternative)} are refused; now needs {', '.join(extra)}",
            )

    def schema(self, where: str, old_node: Any, new_node: Any, direction: Direction) -> None:
        old, old_ref = self.old.resolve(old_node)
        new, new_ref = self.new.resolve(new_node)
        if not isinstance(old, dict) or not isinstance(new, dict):
            return
        key = (old_ref, new_ref, direction)
        if old_ref is not None or new_ref is not None:
            if key in self._open:
                return
            self._open.add(key)
        try:
            self.compare_schemas(where, old, new, direction)
        finally:
            self._open.discard(key)

    def compare_schemas(self, where: str, old: Json, new: Json, direction: Direction) -> None:
        self.types(where, old, new, direction)
        self.enums(where, old, new, direction)
        if direction == "request":
            self.bounds(where, old, new)
            self.additional_properties(where, old, new)
        self.objects(where, old, new, direction)
        old_items, new_items = self.array_items(self.old, old), self.array_items(self.new, new)
        if old_items is not None and new_items is not None:
            self.schema(f"{where}[]", old_items, new_items, direction)

    def types(self, where: str, old: Json, new: Json, direction: Direction) -> None:
        old_types, new_types = self.type_set(self.old, old), self.type_set(self.new, new)
        if direction == "request":
            if new_types is None:
                return
            lost = old_types - _widen(new_types) if old_types is not None else {"any"}
            if lost:
                self.report(
                    where,
                    "narrowed-type",
                    f"no longer accepts {_names(lost)} (now {_names(new_types)})",
                )
        else:
            if old_types is None:
                return
            gained = new_types - _widen(old_types) if new_types is not None else {"any"}
            if gained:
                self.report(
                    where, "changed-type", f"may now be {_names(gained)} (was {_names(old_types)})"
                )

    def enums(self, where: str, old: Json, new: Json, direction: Direction) -> None:
        old_values, new_values = _allowed_values(self.old, old), _allowed_values(self.new, new)
        if new_values is None:
            return
        if old_values is None:
            if direction == "request":
                self.report(where, "narrowed-constraint", f"now only accepts {_values(new_values)}")
            return
        removed = [value for value in old_values if value not in new_values]
        if removed:
            self.report(where, "removed-enum-value", f"value {_values(removed)} removed")

    def bounds(self, where: str, old: Json, new: Json) -> None:
        for keyword in LOWER_BOUNDS + UPPER_BOUNDS:
            if keyword not in new or not isinstance(new[keyword], int | float):
                continue
            before = old.get(keyword)
            upper = keyword in UPPER_BOUNDS
            if before is None or (new[keyword] < before if upper else new[keyword] > before):
                was = "none" if before is None else before
                self.report(where, "narrowed-constraint", f"{keyword} {was} -> {new[keyword]}")
        for keyword in ("pattern", "multipleOf", "format"):
            if keyword in new and new[keyword] != old.get(keyword):
                was = old.get(keyword, "none")
                self.report(where, "narrowed-constraint", f"{keyword} {was!r} -> {new[keyword]!r}")
        if new.get("uniqueItems") and not old.get("uniqueItems"):
            self.report(where, "narrowed-constraint", "items must now be unique")

    def additional_properties(self, where: str, old: Json, new: Json) -> None:
        old_extra, new_extra = (
            old.get("additionalProperties", True),
            new.get("additionalProperties", True),
        )
        if new_extra is True or old_extra is False:
            if isinstance(old_extra, dict) and isinstance(new_extra, dict):
                self.schema(f"{where}.*", old_extra, new_extra, "request")
            return
        if new_extra is False or old_extra is True:
            self.report(where, "narrowed-constraint", "additionalProperties tightened")
        elif isinstance(old_extra, dict) and isinstance(new_extra, dict):
            self.schema(f"{where}.*", old_extra, new_extra, "request")

    def objects(self, where: str, old: Json, new: Json, direction: Direction) -> None:
        old_variants = self.object_variants(self.old, old)
        new_variants = self.object_variants(self.new, new)
        if len(old_variants) == 1 and len(new_variants) == 1:
            pairs = [(next(iter(old_variants.values())), next(iter(new_variants.values())))]
        else:
            pairs = [(o, new_variants[k]) for k, o in old_variants.items() if k in new_variants]
            missing = [k for k in old_variants if k not in new_variants]
            if direction == "request" and new_variants:
                for key in missing:
                    self.report(where, "narrowed-type", f"variant {key} is no longer accepted")
        for old_object, new_object in pairs:
            if old_object is old and new_object is new:
                self.object_fields(where, old, new, direction)
            else:  # a union branch: through schema(), which stops on recursive refs
                self.schema(where, old_object, new_object, direction)

    def object_fields(self, where: str, old: Json, new: Json, direction: Direction) -> None:
        old_props, new_props = old.get("properties") or {}, new.get("properties") or {}
        old_required, new_required = set(old.get("required") or []), set(new.get("required") or [])
        if direction == "request":
            for name in sorted(new_required - old_required):
                self.report(where, "new-required-property", f"property '{name}' is now required")
            if new.get("additionalProperties") is False:
                for name in sorted(set(old_props) - set(new_props)):
                    self.report(
                        where,
                        "removed-request-property",
                        f"property '{name}' is no longer accepted",
                    )
        else:
            for name in sorted(set(old_props) - set(new_props)):
                self.report(where, "removed-response-property", f"property '{name}' is gone")
            for name in sorted((old_required - new_required) & set(new_props)):
                self.report(
                    where,
                    "removed-response-property",
                    f"property '{name}' is no longer always present",
                )
        for name in sorted(set(old_props) & set(new_props)):
            self.schema(f"{where}.{name}", old_props[name], new_props[name], direction)

    @staticmethod
    def type_set(side: _Document, schema: Json) -> set[str] | None:
        """The JSON types a schema admits; None when it admits anything."""
        if "type" in schema:
            declared = schema["type"]
            return set(declared) if isinstance(declared, list) else {declared}
        if "const" in schema or "enum" in schema:
            values = _allowed_values(side, schema) or []
            return {_json_type(v) for v in values}
        branches = schema.get("oneOf") or schema.get("anyOf")
        if branches:
            types: set[str] = set()
            for branch in branches:
                resolved, _ = side.resolve(branch)
                branch_types = (
                    _Comparison.type_set(side, resolved) if isinstance(resolved, dict) else None
                )
                if branch_types is None:
                    return None
                types |= branch_types
            return types
        if "properties" in schema:
            return {"object"}
        if "items" in schema:
            return {"array"}
        return None

    @staticmethod
    def object_variants(side: _Document, schema: Json) -> dict[str, Json]:
        """Object shapes a schema admits, keyed by component name (or position): the
        schema itself, or its union branches as written (unresolved)."""
        if "properties" in schema or schema.get("type") == "object":
            return {"object": schema}
        variants: dict[str, Json] = {}
        for index, branch in enumerate(schema.get("oneOf") or schema.get("anyOf") or []):
            resolved, ref = side.resolve(branch)
            if isinstance(resolved, dict) and (
                "properties" in resolved or resolved.get("type") == "object"
            ):
                variants[ref.rsplit("/", 1)[-1] if ref else f"#{index}"] = branch
        return variants

    @staticmethod
    def array_items(side: _Document, schema: Json) -> Any:
        if "items" in schema:
            return schema["items"]
        found = [
            resolved
            for branch in schema.get("oneOf") or schema.get("anyOf") or []
            for resolved in [side.resolve(branch)[0]]
            if isinstance(resolved, dict) and "items" in resolved
        ]
        return found[0]["items"] if len(found) == 1 else None


def _paths_by_shape(document: Json) -> dict[str, tuple[str, Json]]:
    """Paths keyed with their parameter names blanked: renaming ``{id}`` breaks no one."""
    return {
        _PATH_PARAM.sub("{}", path): (path, item)
        for path, item in (document.get("paths") or {}).items()
        if isinstance(item, dict)
    }


def _parameters(side: _Document, item: Json, operation: Json) -> dict[tuple[str, str], Json]:
    found: dict[tuple[str, str], Json] = {}
    for node in [*(item.get("parameters") or []), *(operation.get("parameters") or [])]:
        parameter, _ = side.resolve(node)
        if isinstance(parameter, dict) and "name" in parameter and "in" in parameter:
            name = parameter["name"]
            location = parameter["in"]
            key = name.lower() if location == "header" else name
            found[(location, "{}" if location == "path" else key)] = parameter
    # Path parameters are matched by position, never by name.
    path_params = [p for k, p in found.items() if k[0] == "path"]
    found = {k: p for k, p in found.items() if k[0] != "path"}
    for index, parameter in enumerate(path_params):
        found[("path", str(index))] = parameter
    return found


def _security(document: Json, operation: Json) -> list[Json]:
    requirements: list[Json] = operation.get("security", document.get("security")) or []
    if any(not alternative for alternative in requirements):
        return []  # an empty alternative makes authorization optional
    return list(requirements)


def _satisfied_by(held: Json, required: Json) -> bool:
    """A caller meeting ``held`` also meets ``required``."""
    return all(
        scheme in held and set(scopes or []) <= set(held[scheme] or [])
        for scheme, scopes in required.items()
    )


def _describe(alternative: Json) -> str:
    return " + ".join(
        f"{scheme} ({', '.join(scopes)})" if scopes else scheme
        for scheme, scopes in alternative.items()
    )


def _widen(types: set[str]) -> set[str]:
    return types | {"integer"} if "number" in types else types


def _allowed_values(side: _Document, schema: Json) -> list[Any] | None:
    """The values a schema admits when it lists them (also across ``oneOf`` branches);
    None when it admits values it does not list."""
    if "const" in schema:
        return [schema["const"]]
    if isinstance(schema.get("enum"), list):
        return list(schema["enum"])
    branches = schema.get("oneOf") or schema.get("anyOf")
    if not branches or "type" in schema:
        return None
    values: list[Any] = []
    for branch in branches:
        resolved, _ = side.resolve(branch)
        if not isinstance(resolved, dict):
            return None
        if resolved.get("type") == "null":
            values.append(None)
            continue
        listed = _allowed_values(side, resolved)
        if listed is None:
            return None
        values.extend(listed)
    return values


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def _names(types: set[str]) -> str:
    return "|".join(sorted(types))


def _values(values: list[Any]) -> str:
    return ", ".join(repr(v) for v in values)
