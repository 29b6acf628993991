"""`tally simulate`: a distributor's day through the running platform's gateway, then
the accuracy report (exit code 1 when a figure that must be zero is not)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
import uvloop
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from shared.settings import data_dir_from_env, service_urls_from_env

console = Console()
errors = Console(stderr=True)


def simulate(
    lines: Annotated[int, typer.Option("--lines", min=1, help="Order lines in the day.")] = 2000,
    seed: Annotated[int, typer.Option("--seed", help="The same seed plays the same day.")] = 1,
    duration: Annotated[
        float,
        typer.Option(
            "--duration",
            min=0,
            help="Seconds the day's curve is compressed into (0: as fast as the platform goes).",
        ),
    ] = 0.0,
    settle: Annotated[
        float, typer.Option("--settle", min=1, help="Seconds to wait for the platform to settle.")
    ] = 300.0,
    gateway: Annotated[
        str | None, typer.Option("--gateway", help="The gateway's URL (default: this machine's).")
    ] = None,
    data_dir: Annotated[
        Path | None,
        typer.Option("--data-dir", envvar="TALLY_DATA_DIR", help="The platform's data dir."),
    ] = None,
    chaos: Annotated[
        bool,
        typer.Option(
            "--chaos",
            help="Kill a random service (SIGKILL) every few seconds during the day; "
            "`tally up` restarts it. The report must still show nothing lost or doubled.",
        ),
    ] = False,
    chaos_every: Annotated[
        float, typer.Option("--chaos-every", min=0.5, help="Mean seconds between kills.")
    ] = 5.0,
    mix: Annotated[
        list[str] | None,
        typer.Option(
            "--mix",
            help="Change the day's mix, NAME=VALUE, repeatable: returns=0.1, cancellations, "
            "carts, cart_abandoned, hot_skus, scarce, channel.edi=0.5, payment.late=0.2, "
            "credit_held_customers=2.",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    output: Annotated[
        Path | None, typer.Option("--output", help="Also write the JSON report to this file.")
    ] = None,
) -> None:
    """Play a day of orders, shipments, invoices, payments and returns through the gateway
    (each customer its own OAuth client) and report the platform's accuracy."""
    from tally.simulate.plan import mix_from
    from tally.simulate.run import Options
    from tally.simulate.run import Progress as RunProgress
    from tally.simulate.run import simulate as run

    try:
        day_mix = mix_from(mix or [])
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--mix") from exc
    directory = data_dir_from_env(data_dir)
    if not (directory / "secrets" / "clients.json").exists():
        errors.print(f"[red]error:[/red] no platform data at {directory}: start it with `make up`")
        raise typer.Exit(2)
    options = Options(
        gateway=(gateway or service_urls_from_env()["gateway"]).rstrip("/"),
        data_dir=directory,
        lines=lines,
        seed=seed,
        day_seconds=duration,
        settle_seconds=settle,
        chaos_every=chaos_every if chaos else None,
        mix=day_mix,
    )
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        disable=as_json,
    ) as bar:
        placed = bar.add_task("order lines", total=lines)
        phase = bar.add_task("phase: planning", total=None)
        hooks = RunProgress(
            planned=lambda n: bar.update(placed, total=n),
            placed=lambda n: bar.advance(placed, n),
            phase=lambda text: bar.update(phase, description=f"phase: {text}"),
        )
        report = uvloop.run(run(options, hooks))  # the services' loop: less CPU per call
    if output is not None:
        output.write_text(json.dumps(report, indent=2, default=str))
    if as_json:
        typer.echo(json.dumps(report, indent=2, default=str))
    else:
        _print(report)
    raise typer.Exit(0 if report["all_zero"] else 1)


def _print(report: dict[str, Any]) -> None:
    from tally.simulate.report import summary_rows

    table = Table(title=f"A simulated day: seed {report['seed']}, tag {report['tag']}")
    table.add_column("figure")
    table.add_column("value", justify="right")
    table.add_column("")
    for name, value, ok in summary_rows(report):
        mark = "" if ok is None else ("[green]ok[/green]" if ok else "[red]NOT ZERO[/red]")
        table.add_row(name, value, mark)
    console.print(table)
    for line in report["simulator"]["unexpected_answers"][:10]:
        console.print(f"[yellow]unexpected:[/yellow] {line}")
