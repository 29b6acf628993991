"""The published contracts: export from code, drift check, breaking-change check
against the released baseline, and release.

- ``export`` / ``check`` / ``exported``: the committed files under ``contracts/``.
- ``breaking_changes``: the pure diff of two OpenAPI documents (``breaking.py``).
- ``compare`` / ``release``: the released baseline per major (``baseline.py``).
"""

from __future__ import annotations

from tally.contracts.baseline import BASELINE_DIR, MajorReport, compare, release
from tally.contracts.breaking import BreakingChange, breaking_changes
from tally.contracts.export import CONTRACTS_DIR, REPO_ROOT, check, export, exported

__all__ = [
    "BASELINE_DIR",
    "CONTRACTS_DIR",
    "REPO_ROOT",
    "BreakingChange",
    "MajorReport",
    "breaking_changes",
    "check",
    "compare",
    "export",
    "exported",
    "release",
]
