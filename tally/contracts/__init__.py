"""The published contracts: export from code, drift check, breaking-change check
against the released baseline, and release.

- ``export`` / ``check`` / ``exported``: the committed files under ``contracts/``.
- ``breaking_changes``: the pure diff of two OpenAPI documents (``breaking.py``).
- ``compare`` / ``release``: the released baseline per major (``baseline.py``).
- ``graphql_changes`` / ``compare_graphql``: the GraphQL SDL against its baseline
  (graphql-core's breaking and dangerous changes, ``sdl.py``).
"""

from __future__ import annotations

from tally.contracts.baseline import (
    BASELINE_DIR,
    MajorReport,
    Report,
    compare,
    release,
)
from tally.contracts.breaking import BreakingChange, breaking_changes
from tally.contracts.export import CONTRACTS_DIR, REPO_ROOT, check, export, exported
from tally.contracts.sdl import (
    SchemaReport,
    compare_graphql,
    graphql_changes,
    graphql_schemas,
    is_graphql,
)

__all__ = [
    "BASELINE_DIR",
    "CONTRACTS_DIR",
    "REPO_ROOT",
    "BreakingChange",
    "MajorReport",
    "Report",
    "SchemaReport",
    "breaking_changes",
    "check",
    "compare",
    "compare_graphql",
    "export",
    "exported",
    "graphql_changes",
    "graphql_schemas",
    "is_graphql",
    "release",
]
