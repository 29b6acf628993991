"""The frozen baseline of every published major, and the breaking check against it.

``contracts/openapi/{api}/v{major}.json`` follows the code on every export.
``contracts/graphql/{name}.graphql`` likewise, with its baseline in
``contracts/baseline/graphql/{name}.graphql`` (the GraphQL comparison is in ``sdl.py``).
``contracts/baseline/{api}/v{major}.json`` is what was last released to partners; it
moves only with ``tally contracts release``, which refuses a breaking change unless
one is accepted with a reason (kept in ``contracts/baseline/ACCEPTED.md``). CI's
``tally contracts check`` compares the export with the baseline, so a change that
breaks a released major fails whichever commits it arrived in.
See docs/decisions/0015-contract-governance.md.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from gateway.contracts.versions import find
from tally.contracts.breaking import BreakingChange, breaking_changes
from tally.contracts.export import CONTRACTS_DIR
from tally.contracts.sdl import SchemaReport, compare_graphql, graphql_schemas

BASELINE_DIR = CONTRACTS_DIR / "baseline"
ACCEPTED_LOG = "ACCEPTED.md"


@dataclass(slots=True)
class MajorReport:
    api: str
    major: int
    breaking: list[BreakingChange] = field(default_factory=list)
    released: bool = True  # a baseline exists
    changed: bool = False  # differs from the baseline at all

    @property
    def key(self) -> str:
        return f"{self.api}/v{self.major}"

    @property
    def baseline(self) -> str:
        """The baseline's path under contracts/baseline/."""
        return f"{self.key}.json"


Report = MajorReport | SchemaReport


def openapi_majors(files: dict[str, str]) -> dict[tuple[str, int], str]:
    """(api, major) -> document text, for the ``openapi/{api}/v{major}.json`` entries."""
    found = {}
    for relative, content in files.items():
        parts = relative.split("/")
        if len(parts) == 3 and parts[0] == "openapi" and parts[2].startswith("v"):
            major = parts[2].removesuffix(".json")[1:]
            if major.isdigit():
                found[(parts[1], int(major))] = content
    return found


def compare(files: dict[str, str], baseline_dir: Path = BASELINE_DIR) -> list[MajorReport]:
    """For every exported major: its breaking changes against the released baseline."""
    reports = []
    for (api, major), content in sorted(openapi_majors(files).items()):
        report = MajorReport(api, major)
        path = baseline_dir / api / f"v{major}.json"
        if not path.exists():
            report.released = False
        else:
            baseline_text = path.read_text()
            report.changed = baseline_text != content
            if report.changed:
                report.breaking = breaking_changes(json.loads(baseline_text), json.loads(content))
        reports.append(report)
    return reports


def release(
    files: dict[str, str],
    *,
    accept_breaking: str | None = None,
    only: Collection[str] | None = None,
    baseline_dir: Path = BASELINE_DIR,
    now: datetime | None = None,
) -> tuple[list[Report], list[Report]]:
    """Moves the baseline of every changed, released major and GraphQL schema (and
    publishes new ones).

    Returns (released, refused). A contract with breaking changes is refused unless
    ``accept_breaking`` gives the reason, which is logged with the changes. A major
    whose version table status is ``preview`` gets no baseline yet. ``only`` limits the
    release to those keys (``orders/v1``, ``graphql/portal``), so accepting one
    contract's break accepts no other's.
    """
    released: list[Report] = []
    refused: list[Report] = []
    contents: dict[str, str] = {
        f"{api}/v{major}": text for (api, major), text in openapi_majors(files).items()
    }
    contents |= {f"graphql/{name}": text for name, text in graphql_schemas(files).items()}
    reports: list[Report] = [*compare(files, baseline_dir), *compare_graphql(files, baseline_dir)]
    for report in reports:
        if only is not None and report.key not in only:
            continue
        if isinstance(report, MajorReport):
            version = find(report.api, report.major)
            if version is not None and version.status == "preview":
                continue
        if report.released and not report.changed:
            continue
        if report.breaking and not accept_breaking:
            refused.append(report)
            continue
        path = baseline_dir / report.baseline
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(contents[report.key])
        if report.breaking and accept_breaking:
            _log_acceptance(baseline_dir, report, accept_breaking, now or datetime.now(UTC))
        released.append(report)
    return released, refused


def _log_acceptance(baseline_dir: Path, report: Report, reason: str, now: datetime) -> None:
    log = baseline_dir / ACCEPTED_LOG
    if not log.exists():
        log.write_text(
            "# Accepted breaking changes\n\n"
            "Written by `tally contracts release --accept-breaking REASON`; review it like code.\n"
        )
    lines = [f"\n## {report.key} — {now:%Y-%m-%d %H:%M} UTC\n", f"Reason: {reason}\n\n"]
    lines += [f"- {change}\n" for change in report.breaking]
    if isinstance(report, SchemaReport):
        lines += [f"- note (dangerous): {change}\n" for change in report.dangerous]
    with log.open("a") as out:
        out.writelines(lines)
