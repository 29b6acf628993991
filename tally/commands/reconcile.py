"""`tally reconcile`: run a reconciliation of ERP, WMS and the availability projection
through the availability API and print its exceptions; `--rebuild-check` instead
rebuilds every position from the movement ledger (read from the availability database
under the data dir) and reports where they differ (exit code 1)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console
from rich.table import Table

from shared.settings import data_dir_from_env, database_url_for, service_urls_from_env

console = Console()
errors = Console(stderr=True)


def _token(data_dir: Path, gateway: str, client_id: str | None, secret: str | None) -> str:
    if not (client_id and secret):
        from tally.bootstrap import secrets_path

        path = secrets_path(data_dir)
        if not path.exists():
            raise typer.BadParameter(
                "no client credentials: pass --client-id/--client-secret, --token, "
                "or run `tally up` once so the demo client exists"
            )
        demo = json.loads(path.read_text())["demo"]
        client_id, secret = demo["client_id"], demo["client_secret"]
    response = httpx.post(
        f"{gateway}/oauth/token",
        # A demo client made before inventory:admin existed holds only the superscope.
        data={"grant_type": "client_credentials", "scope": "inventory:admin admin"},
        auth=(client_id, secret),
        timeout=30,
    )
    if response.status_code != 200:
        raise typer.BadParameter(f"the gateway refused the credentials: {response.text}")
    return str(response.json()["access_token"])


def _run(base: str, token: str, window: int | None, threshold: int | None) -> dict[str, Any]:
    body: dict[str, Any] = {}
    if window is not None:
        body["settlement_window_seconds"] = window
    if threshold is not None:
        body["threshold"] = threshold
    response = httpx.post(
        f"{base}/availability/v1/reconciliation/runs",
        json=body,
        headers={"Authorization": f"Bearer {token}"},
        timeout=120,
    )
    if response.status_code != 200:
        errors.print(f"[red]reconciliation failed ({response.status_code}):[/red] {response.text}")
        raise typer.Exit(2)
    report: dict[str, Any] = response.json()
    return report


def _print_report(report: dict[str, Any]) -> None:
    table = Table(title=f"Reconciliation {report['run_id']}")
    for column in ("exception", "sku", "location", "ERP", "WMS", "projection", "difference"):
        table.add_column(column, justify="right" if column in ("ERP", "WMS") else "left")
    for x in report["exceptions"]:
        table.add_row(
            x["exception_id"],
            x["sku"],
            x["location_id"],
            str(x["erp_on_hand"]),
            str(x["wms_on_hand"]),
            str(x["projection_on_hand"]),
            str(x["largest_difference"]),
        )
    console.print(table)
    console.print(
        f"{report['checked']} positions checked, {len(report['settling'])} settling "
        f"(changed within {report['settlement_window_seconds']} s), "
        f"{len(report['exceptions'])} exceptions above {report['threshold']}."
    )


async def _rebuild_drift(url: str) -> list[dict[str, Any]]:
    from sqlalchemy.ext.asyncio import create_async_engine

    from process_apis.availability.positions import ledger

    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            found = await ledger.drift(conn)
    finally:
        await engine.dispose()
    rows = []
    for key, (stored, rebuilt) in sorted(found.items()):
        for bucket in stored:
            if stored[bucket] != rebuilt[bucket]:
                rows.append(
                    {
                        "sku": key.sku,
                        "location_id": key.location_id,
                        "lot": key.lot or None,
                        "bucket": bucket,
                        "stored": stored[bucket],
                        "rebuilt": rebuilt[bucket],
                    }
                )
    return rows


def reconcile(
    data_dir: Annotated[
        Path | None,
        typer.Option("--data-dir", envvar="TALLY_DATA_DIR", help="Where databases live."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    rebuild_check: Annotated[
        bool,
        typer.Option("--rebuild-check", help="Rebuild positions from the ledger and compare."),
    ] = False,
    window: Annotated[
        int | None, typer.Option("--window", min=0, help="Settlement window (s) for this run.")
    ] = None,
    threshold: Annotated[
        int | None, typer.Option("--threshold", min=0, help="Threshold for this run.")
    ] = None,
    url: Annotated[
        str | None,
        typer.Option("--url", help="Gateway or availability base URL (default: the gateway)."),
    ] = None,
    token: Annotated[str | None, typer.Option("--token", envvar="TALLY_TOKEN")] = None,
    client_id: Annotated[str | None, typer.Option("--client-id", envvar="TALLY_CLIENT_ID")] = None,
    client_secret: Annotated[
        str | None, typer.Option("--client-secret", envvar="TALLY_CLIENT_SECRET")
    ] = None,
) -> None:
    """Reconcile ERP, WMS and the availability projection (or check the ledger)."""
    directory = data_dir_from_env(data_dir)
    if rebuild_check:
        drift = asyncio.run(_rebuild_drift(database_url_for("availability", directory)))
        if as_json:
            console.print_json(json.dumps({"drift": drift}))
        elif drift:
            table = Table(title="Positions that differ from the ledger")
            for column in ("sku", "location", "lot", "bucket", "stored", "rebuilt"):
                table.add_column(column)
            for row in drift:
                table.add_row(*(str(v if v is not None else "") for v in row.values()))
            console.print(table)
        else:
            console.print("positions equal the ledger's rebuild")
        raise typer.Exit(1 if drift else 0)
    gateway = service_urls_from_env()["gateway"]
    base = (url or gateway).rstrip("/")
    bearer = token or _token(directory, gateway, client_id, client_secret)
    report = _run(base, bearer, window, threshold)
    if as_json:
        console.print_json(json.dumps(report))
    else:
        _print_report(report)
