"""`tally contracts export|check|release|diff`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

contracts_app = typer.Typer(
    help="Export, check and release the published contracts.", no_args_is_help=True
)
console = Console(soft_wrap=True)  # CI logs: one change per line, unwrapped

# Accepted like every command's. The contracts come from the code alone: the apps the
# export builds get a throwaway folder inside this directory, removed afterwards.
DataDir = Annotated[
    Path | None,
    typer.Option(
        "--data-dir",
        envvar="TALLY_DATA_DIR",
        help="Where the throwaway apps of the export keep their files while they are "
        "built (default: a temporary folder). Nothing there is read.",
    ),
]


@contracts_app.command("export")
def contracts_export(data_dir: DataDir = None) -> None:
    """Write every OpenAPI document, the portal SDL and the event catalog under contracts/."""
    from tally.contracts import export

    for path in export(data_dir=data_dir):
        console.print(f"wrote {path}")


@contracts_app.command("check")
def contracts_check(data_dir: DataDir = None) -> None:
    """Fail when the committed contracts differ from the code, or when a change breaks a
    released major (compared with contracts/baseline/)."""
    from tally.contracts import check, compare, exported

    files = exported(data_dir)
    failed = False
    drift = check(files=files)
    for relative in drift:
        console.print(f"[red]differs:[/red] contracts/{relative}")
    if drift:
        console.print("Run 'tally contracts export' and commit the result.")
        failed = True
    reports = compare(files)
    for report in reports:
        if report.breaking:
            failed = True
            console.print(
                f"[red]breaking:[/red] {report.key} breaks {len(report.breaking)} promise(s) "
                f"of the released contract (contracts/baseline/{report.key}.json):"
            )
            for change in report.breaking:
                console.print(f"  - {escape(str(change))}")
        elif not report.released and not _preview(report.api, report.major):
            failed = True
            console.print(
                f"[red]unreleased:[/red] {report.key} is published (gateway/contracts/versions.py) "
                "but has no baseline: run 'tally contracts release' and commit contracts/baseline/"
            )
        elif report.changed:
            console.print(f"note: {report.key} has compatible unreleased changes")
    if any(r.breaking for r in reports):
        console.print(
            "Ship the change as a new major (served beside the old one), or, when no partner "
            "can be affected, run 'tally contracts release --accept-breaking \"why\"'."
        )
    if failed:
        raise typer.Exit(1)
    console.print("contracts are current and keep every released promise")


@contracts_app.command("release")
def contracts_release(
    accept_breaking: Annotated[
        str | None,
        typer.Option(
            "--accept-breaking",
            help="Release breaking changes anyway; the reason is logged in "
            "contracts/baseline/ACCEPTED.md.",
        ),
    ] = None,
    data_dir: DataDir = None,
) -> None:
    """Freeze the current contracts as the released baseline of every major."""
    from tally.contracts import exported, release

    released, refused = release(exported(data_dir), accept_breaking=accept_breaking)
    for report in released:
        note = " (breaking changes accepted)" if report.breaking else ""
        console.print(f"released {report.key}{note}")
    for report in refused:
        console.print(f"[red]refused:[/red] {report.key} has breaking changes:")
        for change in report.breaking:
            console.print(f"  - {escape(str(change))}")
    if not released and not refused:
        console.print("nothing to release: every baseline is current")
    if refused:
        raise typer.Exit(1)


@contracts_app.command("diff")
def contracts_diff(
    old: Annotated[Path, typer.Argument(help="The older OpenAPI document (JSON).")],
    new: Annotated[Path, typer.Argument(help="The newer OpenAPI document (JSON).")],
    data_dir: Annotated[
        Path | None,
        typer.Option(
            "--data-dir",
            envvar="TALLY_DATA_DIR",
            help="Accepted like every command's; diff reads only OLD and NEW.",
        ),
    ] = None,
) -> None:
    """List the changes from OLD to NEW that break a consumer of OLD."""
    del data_dir
    from tally.contracts import breaking_changes

    changes = breaking_changes(json.loads(old.read_text()), json.loads(new.read_text()))
    for change in changes:
        console.print(escape(str(change)))
    if changes:
        raise typer.Exit(1)
    console.print("no breaking change")


def _preview(api: str, major: int) -> bool:
    from gateway.contracts.versions import find

    version = find(api, major)
    return version is not None and version.status == "preview"
