"""`tally clients ...` (placeholder until the gateway's client registry lands)."""

from __future__ import annotations

import typer

clients_app = typer.Typer(help="Manage OAuth clients of the gateway.", no_args_is_help=True)
