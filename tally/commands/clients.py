"""`tally clients create|list|disable`: the gateway's OAuth clients.

Works while the gateway runs: the registry is the gateway's own SQLite database,
which the gateway reads on every token request.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from shared.settings import data_dir_from_env, database_url_for
from shared.topology import ALL_AUDIENCES, ALL_SCOPES, RATE_TIERS

if TYPE_CHECKING:
    from gateway.clients.registry import ClientRegistry

clients_app = typer.Typer(help="Manage OAuth clients of the gateway.", no_args_is_help=True)
console = Console()
errors = Console(stderr=True)

DataDir = Annotated[
    str,
    typer.Option("--data-dir", envvar="TALLY_DATA_DIR", help="Where databases and keys live."),
]


def _registry(data_dir: str) -> ClientRegistry:
    from gateway.clients.registry import ClientRegistry

    directory = data_dir_from_env(Path(data_dir))
    return ClientRegistry(database_url_for("gateway", directory))


@clients_app.command("create")
def create(
    name: Annotated[str, typer.Option("--name", help="Who the client is (shown in lists).")],
    scopes: Annotated[
        str, typer.Option("--scopes", help=f"Space separated, of: {' '.join(ALL_SCOPES)}.")
    ],
    customer: Annotated[
        str | None, typer.Option("--customer", help="Bind the client to one customer id.")
    ] = None,
    tier: Annotated[
        str, typer.Option("--tier", help=f"Rate tier: {', '.join(RATE_TIERS)}.")
    ] = "bronze",
    apis: Annotated[
        str | None,
        typer.Option(
            "--apis",
            help=f"Token audiences, of: {' '.join(ALL_AUDIENCES)} (default: from the scopes).",
        ),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print {client_id, client_secret} as JSON.")
    ] = False,
    data_dir: DataDir = "./var",
) -> None:
    """Register a client; its secret is printed once and never stored in clear."""
    registry = _registry(data_dir)
    try:
        client_id, secret = registry.create(
            name, scopes, customer_id=customer, tier=tier, allowed_apis=apis
        )
    except ValueError as exc:
        errors.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc
    finally:
        registry.close()
    if as_json:
        typer.echo(json.dumps({"client_id": client_id, "client_secret": secret}))
        return
    table = Table(title=f"Client {name}")
    for column in ("client_id", "client_secret"):  # fold, never cut, a credential
        table.add_column(column, overflow="fold")
    table.add_row(client_id, secret)
    console.print(table)
    console.print(
        "[yellow]The secret is shown this once: store it now, it cannot be read again.[/yellow]"
    )


@clients_app.command("list")
def list_clients(
    as_json: Annotated[bool, typer.Option("--json", help="Print the clients as JSON.")] = False,
    data_dir: DataDir = "./var",
) -> None:
    """Every registered client (never its secret)."""
    registry = _registry(data_dir)
    try:
        records = registry.list()
    finally:
        registry.close()
    if as_json:
        rows = [
            {
                "client_id": r.client_id,
                "name": r.name,
                "scopes": " ".join(r.scopes),
                "allowed_apis": " ".join(r.allowed_apis),
                "customer_id": r.customer_id,
                "tier": r.tier,
                "disabled": r.disabled,
                "created_at": r.created_at.isoformat(),
            }
            for r in records
        ]
        typer.echo(json.dumps({"items": rows, "next_cursor": None}))
        return
    table = Table(title=f"{len(records)} client(s)")
    table.add_column("client_id", overflow="fold")
    for column in ("name", "scopes", "APIs", "customer", "tier", "status", "created"):
        table.add_column(column)
    for r in records:
        table.add_row(
            r.client_id,
            r.name,
            " ".join(r.scopes),
            " ".join(r.allowed_apis),
            r.customer_id or "-",
            r.tier,
            "[red]disabled[/red]" if r.disabled else "active",
            r.created_at.strftime("%Y-%m-%d %H:%M:%SZ"),
        )
    console.print(table)


@clients_app.command("disable")
def disable(
    client_id: Annotated[str, typer.Argument(help="The client to refuse from now on.")],
    data_dir: DataDir = "./var",
) -> None:
    """Refuse the client's next token requests (tokens already issued run out in 15 min)."""
    registry = _registry(data_dir)
    try:
        found = registry.disable(client_id)
    finally:
        registry.close()
    if not found:
        errors.print(f"[red]error:[/red] no client {client_id}")
        raise typer.Exit(1)
    console.print(f"disabled {client_id}")
