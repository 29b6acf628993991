"""`tally contracts export|check|release|diff`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape

if TYPE_CHECKING:
    from tally.contracts.breaking import BreakingChange

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
    released major or GraphQL schema (compared with contracts/baseline/)."""
    from tally.contracts import check, exported

    files = exported(data_dir)
    drift = check(files=files)
    for relative in drift:
        console.print(f"[red]differs:[/red] contracts/{relative}")
    if drift:
        console.print("Run 'tally contracts export' and commit the result.")
    failed = _check_openapi(files)
    failed = _check_graphql(files) or failed
    if failed or drift:
        raise typer.Exit(1)
    console.print("contracts are current and keep every released promise")


def _check_openapi(files: dict[str, str]) -> bool:
    """Prints what breaks a released major; True when the check fails."""
    from tally.contracts import compare

    failed = False
    reports = compare(files)
    for report in reports:
        if report.breaking:
            failed = True
            _print_breaking(report.key, report.baseline, report.breaking)
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
    return failed


def _check_graphql(files: dict[str, str]) -> bool:
    """Prints what breaks a released GraphQL schema (and its dangerous changes as
    notes); True when the check fails."""
    from tally.contracts import compare_graphql

    failed = False
    schemas = compare_graphql(files)
    for schema in schemas:
        if schema.breaking:
            failed = True
            _print_breaking(schema.key, schema.baseline, schema.breaking)
        elif not schema.released:
            failed = True
            console.print(
                f"[red]unreleased:[/red] {schema.key} is served but has no baseline: run "
                f"'tally contracts release --only {schema.key}' and commit contracts/baseline/"
            )
        elif schema.changed:
            console.print(f"note: {schema.key} has compatible unreleased changes")
        for change in schema.dangerous:
            console.print(f"note: {schema.key} dangerous change: {escape(str(change))}")
    broken = [s.key for s in schemas if s.breaking]
    if broken:
        console.print(
            "Deprecate instead (@deprecated, the old field served beside the new one), or, "
            "when no client can be affected, run 'tally contracts release "
            + " ".join(f"--only {key}" for key in broken)
            + ' --accept-breaking "why"\'.'
        )
    return failed


def _print_breaking(key: str, baseline: str, changes: list[BreakingChange]) -> None:
    console.print(
        f"[red]breaking:[/red] {key} breaks {len(changes)} promise(s) "
        f"of the released contract (contracts/baseline/{baseline}):"
    )
    for change in changes:
        console.print(f"  - {escape(str(change))}")


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
    only: Annotated[
        list[str] | None,
        typer.Option(
            "--only",
            help="Release only this contract (repeatable): orders/v1, graphql/portal, ...; "
            "with --accept-breaking, so that no other contract's break is accepted with it.",
        ),
    ] = None,
    data_dir: DataDir = None,
) -> None:
    """Freeze the current contracts as the released baseline of every major and of the
    GraphQL schemas."""
    from tally.contracts import exported, release

    files = exported(data_dir)
    if only:
        known = _keys(files)
        unknown = [key for key in only if key not in known]
        if unknown:
            console.print(f"[red]unknown contract(s):[/red] {', '.join(unknown)}")
            console.print(f"known: {', '.join(sorted(known))}")
            raise typer.Exit(2)
    released, refused = release(files, accept_breaking=accept_breaking, only=only)
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
    old: Annotated[
        Path, typer.Argument(help="The older contract: OpenAPI (JSON) or GraphQL SDL (.graphql).")
    ],
    new: Annotated[Path, typer.Argument(help="The newer contract, of the same kind.")],
    data_dir: Annotated[
        Path | None,
        typer.Option(
            "--data-dir",
            envvar="TALLY_DATA_DIR",
            help="Accepted like every command's; diff reads only OLD and NEW.",
        ),
    ] = None,
) -> None:
    """List the changes from OLD to NEW that break a consumer of OLD (for GraphQL SDL,
    the dangerous changes too, as notes)."""
    del data_dir
    from tally.contracts import breaking_changes, graphql_changes, is_graphql

    if is_graphql(old) or is_graphql(new):
        changes, dangerous = graphql_changes(old.read_text(), new.read_text(), new.stem)
        for change in dangerous:
            console.print(f"note: dangerous: {escape(str(change))}")
    else:
        changes = breaking_changes(json.loads(old.read_text()), json.loads(new.read_text()))
    for change in changes:
        console.print(escape(str(change)))
    if changes:
        raise typer.Exit(1)
    console.print("no breaking change")


def _keys(files: dict[str, str]) -> set[str]:
    from tally.contracts.baseline import openapi_majors
    from tally.contracts.sdl import graphql_schemas

    keys = {f"{api}/v{major}" for api, major in openapi_majors(files)}
    return keys | {f"graphql/{name}" for name in graphql_schemas(files)}


def _preview(api: str, major: int) -> bool:
    from gateway.contracts.versions import find

    version = find(api, major)
    return version is not None and version.status == "preview"
