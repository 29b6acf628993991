"""The GraphQL contracts (``contracts/graphql/{name}.graphql``) against their released
baseline (``contracts/baseline/graphql/{name}.graphql``).

The comparison is graphql-core's own: ``find_breaking_changes`` (a removed type, field
or argument, a changed type, a new required argument or input field, ...) fails the
check; ``find_dangerous_changes`` (a new enum value or union member a client may not
expect, a changed default) is printed as a note. The drift check of the export itself
is the same as the OpenAPI documents' (``export.check``).
See docs/decisions/0015-contract-governance.md.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from graphql import (
    GraphQLError,
    GraphQLSchema,
    build_schema,
    find_breaking_changes,
    find_dangerous_changes,
)

from tally.contracts.breaking import BreakingChange
from tally.contracts.export import CONTRACTS_DIR

GRAPHQL_SUFFIXES = (".graphql", ".graphqls", ".gql")
_FILE = re.compile(r"^graphql/(?P<name>[\w-]+)\.graphql$")


@dataclass(slots=True)
class SchemaReport:
    """One GraphQL schema compared with its released baseline."""

    name: str
    breaking: list[BreakingChange] = field(default_factory=list)
    dangerous: list[BreakingChange] = field(default_factory=list)
    released: bool = True  # a baseline exists
    changed: bool = False  # differs from the baseline at all

    @property
    def key(self) -> str:
        return f"graphql/{self.name}"

    @property
    def baseline(self) -> str:
        """The baseline's path under contracts/baseline/."""
        return f"{self.key}.graphql"


def _rule(kind: str) -> str:
    return kind.lower().replace("_", "-")


def _build(sdl: str, where: str, side: str) -> GraphQLSchema | BreakingChange:
    try:
        return build_schema(sdl)
    except (GraphQLError, TypeError) as error:
        message = error.message if isinstance(error, GraphQLError) else str(error)
        return BreakingChange(where, "invalid-schema", f"the {side} SDL does not build: {message}")


def graphql_changes(
    old_sdl: str, new_sdl: str, where: str = "graphql"
) -> tuple[list[BreakingChange], list[BreakingChange]]:
    """(breaking, dangerous) changes from ``old_sdl`` to ``new_sdl``, sorted.

    A new SDL that does not build is one breaking change (``invalid-schema``)."""
    old = _build(old_sdl, where, "released")
    new = _build(new_sdl, where, "new")
    if isinstance(old, BreakingChange) or isinstance(new, BreakingChange):
        return [side for side in (old, new) if isinstance(side, BreakingChange)], []
    breaking = {
        BreakingChange(where, _rule(c.type.name), c.description)
        for c in find_breaking_changes(old, new)
    }
    dangerous = {
        BreakingChange(where, _rule(c.type.name), c.description)
        for c in find_dangerous_changes(old, new)
    }
    return sorted(breaking), sorted(dangerous)


def graphql_schemas(files: dict[str, str]) -> dict[str, str]:
    """name -> SDL, for the ``graphql/{name}.graphql`` entries of an export."""
    found = {}
    for relative, content in files.items():
        match = _FILE.match(relative)
        if match:
            found[match["name"]] = content
    return found


def compare_graphql(
    files: dict[str, str], baseline_dir: Path = CONTRACTS_DIR / "baseline"
) -> list[SchemaReport]:
    """For every exported GraphQL schema: its changes against the released baseline."""
    reports = []
    for name, content in sorted(graphql_schemas(files).items()):
        report = SchemaReport(name)
        path = baseline_dir / report.baseline
        if not path.exists():
            report.released = False
        else:
            baseline_text = path.read_text()
            report.changed = baseline_text != content
            if report.changed:
                report.breaking, report.dangerous = graphql_changes(
                    baseline_text, content, report.key
                )
        reports.append(report)
    return reports


def is_graphql(path: Path) -> bool:
    return path.suffix in GRAPHQL_SUFFIXES
