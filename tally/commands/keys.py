"""`tally keys rotate|list|prune`: the gateway's token signing keys.

Works while the gateway runs: it notices the replaced key file within a second (and
at once when it signs), so ``rotate`` takes effect without a restart. See
docs/decisions/0012.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from shared.settings import data_dir_from_env

if TYPE_CHECKING:
    from gateway.oauth.keys import KeyStore

keys_app = typer.Typer(help="Rotate and list the gateway's signing keys.", no_args_is_help=True)
console = Console()
errors = Console(stderr=True)

DataDir = Annotated[
    str,
    typer.Option("--data-dir", envvar="TALLY_DATA_DIR", help="Where databases and keys live."),
]


def _store(data_dir: str) -> KeyStore:
    from gateway.oauth.keys import KeyStore

    return KeyStore.in_data_dir(data_dir_from_env(Path(data_dir)))


def _when(epoch: int | None) -> str:
    if epoch is None:
        return "-"
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


@keys_app.command("rotate")
def rotate(
    max_token_lifetime: Annotated[
        int | None,
        typer.Option(
            "--max-token-lifetime",
            min=60,
            max=86_400,
            help="Seconds the old key keeps verifying beyond now, before the margin "
            "(default: TALLY_TOKEN_LIFETIME_SECONDS or 900).",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the new kid as JSON.")] = False,
    data_dir: DataDir = "./var",
) -> None:
    """Add a key that signs from now on; the old one verifies until its tokens expire."""
    try:
        store = _store(data_dir)
        previous = store.active.kid
        kid = store.rotate(max_token_lifetime)
    except ValueError as exc:
        errors.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc
    if as_json:
        typer.echo(json.dumps({"active_kid": kid, "previous_kid": previous}))
        return
    console.print(f"new signing key {kid}; {previous} keeps verifying until its tokens expire")


@keys_app.command("list")
def list_keys(
    as_json: Annotated[bool, typer.Option("--json", help="Print the keys as JSON.")] = False,
    data_dir: DataDir = "./var",
) -> None:
    """Every key in the key file: active, verifying (rotated out) or retired."""
    infos = _store(data_dir).describe()
    if as_json:
        rows = [
            {
                "kid": i.kid,
                "status": i.status,
                "created_at": i.created_at,
                "verify_until": i.verify_until,
            }
            for i in infos
        ]
        typer.echo(json.dumps({"items": rows, "next_cursor": None}))
        return
    table = Table(title=f"{len(infos)} signing key(s)")
    table.add_column("kid", overflow="fold")
    for column in ("status", "created", "verifies until"):
        table.add_column(column)
    for i in infos:
        table.add_row(i.kid, i.status, _when(i.created_at), _when(i.verify_until))
    console.print(table)


@keys_app.command("prune")
def prune(data_dir: DataDir = "./var") -> None:
    """Drop retired keys (rotated out, and every token they signed has expired)."""
    removed = _store(data_dir).prune()
    console.print(
        f"removed {len(removed)} retired key(s){': ' if removed else ''}{' '.join(removed)}"
    )
