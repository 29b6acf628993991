"""`tally clients create|list|disable|rotate-secret`: the gateway's OAuth clients.

Works while the gateway runs: the registry is the gateway's own SQLite database,
which the gateway reads on every token request. A client authenticates with a secret
(shown once) or, registered with ``--jwks``/``--public-key``, with ``private_key_jwt``.
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
    jwks: Annotated[
        Path | None,
        typer.Option(
            "--jwks",
            help="A JWKS (or one JWK) file of the client's public keys: the client "
            "authenticates with private_key_jwt and gets no secret.",
        ),
    ] = None,
    public_key: Annotated[
        Path | None,
        typer.Option("--public-key", help="A PEM public key file (instead of --jwks)."),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print {client_id, client_secret} as JSON.")
    ] = False,
    data_dir: DataDir = "./var",
) -> None:
    """Register a client; its secret is printed once and never stored in clear."""
    if jwks and public_key:
        errors.print("[red]error:[/red] give --jwks or --public-key, not both")
        raise typer.Exit(2)
    key_file = jwks or public_key
    registry = _registry(data_dir)
    try:
        if key_file is not None:
            keys = _read_key_file(key_file)
            client_id = registry.create_with_keys(
                name, scopes, keys, customer_id=customer, tier=tier, allowed_apis=apis
            )
        else:
            client_id, secret = registry.create(
                name, scopes, customer_id=customer, tier=tier, allowed_apis=apis
            )
    except ValueError as exc:
        errors.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc
    finally:
        registry.close()
    if key_file is not None:
        if as_json:
            typer.echo(json.dumps({"client_id": client_id, "auth_method": "private_key_jwt"}))
        else:
            console.print(f"registered {client_id} (private_key_jwt; no secret)")
        return
    _print_secret(name, client_id, secret, as_json)


def _read_key_file(path: Path) -> str:
    try:
        return path.read_text()
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc.strerror}") from exc


def _print_secret(title: str, client_id: str, secret: str, as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps({"client_id": client_id, "client_secret": secret}))
        return
    table = Table(title=f"Client {title}")
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
                "auth_method": r.auth_method,
                "disabled": r.disabled,
                "created_at": r.created_at.isoformat(),
            }
            for r in records
        ]
        typer.echo(json.dumps({"items": rows, "next_cursor": None}))
        return
    table = Table(title=f"{len(records)} client(s)")
    table.add_column("client_id", overflow="fold")
    for column in ("name", "scopes", "APIs", "customer", "tier", "auth", "status", "created"):
        table.add_column(column)
    for r in records:
        table.add_row(
            r.client_id,
            r.name,
            " ".join(r.scopes),
            " ".join(r.allowed_apis),
            r.customer_id or "-",
            r.tier,
            r.auth_method,
            "[red]disabled[/red]" if r.disabled else "active",
            r.created_at.strftime("%Y-%m-%d %H:%M:%SZ"),
        )
    console.print(table)


@clients_app.command("disable")
def disable(
    client_id: Annotated[str, typer.Argument(help="The client to refuse from now on.")],
    data_dir: DataDir = "./var",
) -> None:
    """Refuse the client from now on; the tokens it holds are revoked at once (the
    gateway and every service refuse them within about a second)."""
    registry = _registry(data_dir)
    try:
        found = registry.disable(client_id)
    finally:
        registry.close()
    if not found:
        errors.print(f"[red]error:[/red] no client {client_id}")
        raise typer.Exit(1)
    console.print(f"disabled {client_id}")


@clients_app.command("rotate-secret")
def rotate_secret(
    client_id: Annotated[str, typer.Argument(help="The client whose secret to replace.")],
    revoke_tokens: Annotated[
        bool,
        typer.Option("--revoke-tokens", help="Also revoke the tokens issued with the old secret."),
    ] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print {client_id, client_secret} as JSON.")
    ] = False,
    data_dir: DataDir = "./var",
) -> None:
    """Give the client a new secret, printed once; the old one stops working at once."""
    registry = _registry(data_dir)
    try:
        secret = registry.rotate_secret(client_id, revoke_tokens=revoke_tokens)
    except ValueError as exc:
        errors.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc
    finally:
        registry.close()
    if secret is None:
        errors.print(f"[red]error:[/red] no client {client_id}")
        raise typer.Exit(1)
    _print_secret(client_id, client_id, secret, as_json)
