"""`tally`: the one command-line entry point."""

from __future__ import annotations

import logging
import signal
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from shared.settings import data_dir_from_env
from shared.topology import BY_NAME, SERVICES
from tally.commands.audit import audit
from tally.commands.clients import clients_app
from tally.commands.events import events_app
from tally.commands.keys import keys_app
from tally.commands.reconcile import reconcile
from tally.commands.simulate import simulate
from tally.contracts.commands import contracts_app

app = typer.Typer(help="Tally: API-led integration for distributors.", no_args_is_help=True)
app.add_typer(clients_app, name="clients")
app.command("audit")(audit)
app.add_typer(contracts_app, name="contracts")
app.add_typer(events_app, name="events")
app.add_typer(keys_app, name="keys")
app.command("reconcile")(reconcile)
app.command("simulate")(simulate)
console = Console()

DataDir = Annotated[
    Path | None,
    typer.Option(
        "--data-dir", envvar="TALLY_DATA_DIR", help="Where databases, logs and keys live."
    ),
]


@app.command()
def serve(
    service: Annotated[
        str,
        typer.Argument(help="erp, wms, availability, order_to_ship, billing, portal or gateway"),
    ],
    data_dir: DataDir = None,
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers",
            min=1,
            help="Worker processes (default TALLY_<SERVICE>_WORKERS, else 1); one leads.",
        ),
    ] = None,
) -> None:
    """Run one service in the foreground (what a container runs)."""
    import os
    import shutil

    import uvicorn

    from shared.observability import MULTIPROC_ENV
    from shared.service import SERVED_PROCESS_ENV
    from shared.settings import load_settings

    if service not in BY_NAME:
        raise typer.BadParameter(f"unknown service {service!r}; one of {', '.join(BY_NAME)}")
    if data_dir:
        os.environ["TALLY_DATA_DIR"] = str(data_dir)
    if workers:
        os.environ[f"TALLY_{service.upper()}_WORKERS"] = str(workers)
    settings = load_settings(service)
    if settings.workers > 1 and service == "gateway" and not settings.redis_url:
        # Its rate-limit windows live in the process unless Redis holds them.
        raise typer.BadParameter(
            "the gateway runs several workers only with TALLY_REDIS_URL (shared rate limits)"
        )
    os.environ[SERVED_PROCESS_ENV] = "1"
    if settings.workers > 1:
        # Each worker writes its metrics here; /metrics merges them (prometheus_client's
        # multiprocess mode). Emptied at start: the files of a previous run are stale.
        metrics_dir = settings.data_dir / "metrics" / service
        shutil.rmtree(metrics_dir, ignore_errors=True)
        metrics_dir.mkdir(parents=True)
        os.environ[MULTIPROC_ENV] = str(metrics_dir)
    uvicorn.run(
        BY_NAME[service].app_factory,
        factory=True,
        host=settings.host,
        port=settings.port,
        loop="uvloop",
        http="shared.http_server:HttpProtocol",  # a response in one send
        log_level="warning",
        access_log=False,
        proxy_headers=False,  # the gateway is the edge: no caller names its own address
        timeout_graceful_shutdown=5,
        workers=settings.workers,
    )


@app.command()
def up(
    data_dir: DataDir = None,
    bus: Annotated[
        str | None, typer.Option("--bus", envvar="TALLY_BUS_URL", help="Event bus URL.")
    ] = None,
) -> None:
    """Start every service and the gateway on 127.0.0.1, seed demo data, print the URLs."""
    from tally.launcher import launch

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    directory = data_dir_from_env(data_dir)
    stopping = False

    def request_stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    with console.status("Starting services...") as status:
        launched = launch(
            directory, extra_env={"TALLY_BUS_URL": bus} if bus else None, progress=status.update
        )
    platform = launched.platform
    try:
        _print_urls(platform, launched.clients, launched.seconds)
        while not stopping:
            for name in platform.restart_crashed():
                console.print(f"[yellow]{name} crashed and was restarted[/yellow]")
            time.sleep(0.5)
    finally:
        console.print("Stopping...")
        platform.stop()
        console.print("Stopped.")


def _print_urls(platform: object, clients: dict[str, dict[str, str]], seconds: float) -> None:
    from tally.supervisor import Platform

    assert isinstance(platform, Platform)
    gateway = platform.url("gateway")
    table = Table(title=f"Tally is up ({seconds:.1f} s)")
    table.add_column("what")
    table.add_column("URL")
    table.add_row("Gateway", gateway)
    table.add_row("GraphiQL (portal)", f"{gateway}/graphql")
    table.add_row("Contract catalog", f"{gateway}/contracts")
    for spec in SERVICES:
        if spec.api and spec.name != "portal":
            table.add_row(f"{spec.title} docs", f"{platform.url(spec.name)}/schema")
    console.print(table)
    demo = clients["demo"]
    console.print(f"Demo client id:     [bold]{demo['client_id']}[/bold]")
    console.print(f"Demo client secret: [bold]{demo['client_secret']}[/bold]")
    # Commands to paste: printed whole, never wrapped at the terminal's width (a wrapped
    # line pastes as two broken commands) and without markup or highlighting.
    console.print("Try (the README's walk-through starts here):")
    for command in (
        f"export CLIENT_ID={demo['client_id']} CLIENT_SECRET={demo['client_secret']}",
        f'curl -s -u "$CLIENT_ID:$CLIENT_SECRET" -d grant_type=client_credentials '
        f"{gateway}/oauth/token",
    ):
        console.print(f"  {command}", soft_wrap=True, markup=False, highlight=False)
    console.print("Press Ctrl-C to stop.")
