"""`tally audit`: the gateway's audit log (every call: time, client, customer, method,
route, status, latency, correlation id), newest first. Reads the gateway's own
database, so it works while the gateway runs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from shared.settings import data_dir_from_env, database_url_for

console = Console()
errors = Console(stderr=True)


def audit(
    client: Annotated[str | None, typer.Option("--client", help="Only this client id.")] = None,
    since: Annotated[
        str | None,
        typer.Option(
            "--since", help="From this time on: 2026-11-23T10:00:00Z, or 30s, 15m, 2h, 7d."
        ),
    ] = None,
    status: Annotated[int | None, typer.Option("--status", help="Only this HTTP status.")] = None,
    limit: Annotated[
        int, typer.Option("--limit", min=1, max=10_000, help="At most this many.")
    ] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
    data_dir: Annotated[
        str,
        typer.Option("--data-dir", envvar="TALLY_DATA_DIR", help="Where databases and keys live."),
    ] = "./var",
) -> None:
    """Show the gateway's audit log, newest first."""
    from gateway.audit.store import AuditStore, parse_since

    try:
        since_text = parse_since(since) if since else None
    except ValueError as exc:
        errors.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc
    directory = data_dir_from_env(Path(data_dir))
    store = AuditStore(database_url_for("gateway", directory))
    try:
        rows = store.query(client_id=client, status=status, since=since_text, limit=limit)
    finally:
        store.close()
    if as_json:
        for row in rows:
            typer.echo(json.dumps(row))
        return
    table = Table(title=f"Audit log: {len(rows)} call(s), newest first")
    for column in ("time", "client", "customer", "method", "route", "status", "ms", "correlation"):
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(
            row["at"],
            row["client_id"] or "-",
            row["customer_id"] or "-",
            row["method"],
            row["path"],
            str(row["status"]),
            f"{row['latency_ms']:.1f}",
            row["correlation_id"] or "-",
        )
    console.print(table)
