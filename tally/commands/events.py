"""`tally events tail|lag|replay` and `tally events dlq list|show`: the event bus,
whichever engine runs it (the data dir's embedded log by default, or ``--bus URL``).

Works while the platform runs: every command is a client of the bus like the services.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from shared.settings import bus_url_for, data_dir_from_env

if TYPE_CHECKING:  # imported when a command runs: `tally --help` stays quick
    from shared.events.bus import DeadLetter, EventBus, GroupLag
    from shared.events.envelope import Event

T = TypeVar("T")

events_app = typer.Typer(help="Inspect and operate the event bus.", no_args_is_help=True)
dlq_app = typer.Typer(help="Dead letters: events no consumer could apply.", no_args_is_help=True)
events_app.add_typer(dlq_app, name="dlq")
console = Console()
errors = Console(stderr=True)

DataDir = Annotated[
    Path | None,
    typer.Option(
        "--data-dir", envvar="TALLY_DATA_DIR", help="Where databases and the event log live."
    ),
]
BusUrl = Annotated[
    str | None,
    typer.Option(
        "--bus",
        envvar="TALLY_BUS_URL",
        help="Event bus URL (sqlite:///PATH or redis://HOST:PORT/DB; default: the data dir's "
        "embedded log).",
    ),
]
StreamOption = Annotated[
    str | None, typer.Option("--stream", help="Only this stream (e.g. tally.wms).")
]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]

_PAGE = 1000
_EVERYTHING = 1_000_000


def resolve_bus_url(data_dir: Path | None, bus: str | None) -> str:
    return bus or bus_url_for(data_dir_from_env(data_dir))


def _open(data_dir: Path | None, bus: str | None) -> EventBus:
    url = resolve_bus_url(data_dir, bus)
    if url.startswith("sqlite:///"):
        path = Path(url.removeprefix("sqlite:///"))
        if not path.exists():  # never create an empty log in the wrong place
            errors.print(
                f"[red]error:[/red] no event log at {path} (start the platform, or pass "
                "--data-dir or --bus)"
            )
            raise typer.Exit(1)
    from shared.events.bus import open_bus

    try:
        return open_bus(url)
    except ValueError as exc:
        errors.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc


def _run(data_dir: Path | None, bus: str | None, work: Callable[[EventBus], Awaitable[T]]) -> T:
    async def main() -> T:
        opened = _open(data_dir, bus)
        try:
            return await work(opened)
        finally:
            await opened.close()

    try:
        return asyncio.run(main())
    except (typer.Exit, KeyboardInterrupt):
        raise
    except Exception as exc:  # an unreachable Redis, an unreadable file, ...
        errors.print(
            f"[red]error:[/red] the event bus failed: {type(exc).__name__}: {exc}",
            highlight=False,
        )
        raise typer.Exit(1) from exc


# -- rendering ------------------------------------------------------------------------


def _when(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _age(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f}s"
    if seconds < 3600:
        return f"{seconds / 60:.1f}m"
    return f"{seconds / 3600:.1f}h"


def _entry_json(entry_id: str, stream: str, event: Event) -> dict[str, Any]:
    return {
        "entry_id": entry_id,
        "stream": stream,
        "id": event.id,
        "type": event.type,
        "source": event.source,
        "subject": event.subject,
        "sequence": event.sequence,
        "time": event.time.isoformat(),
        "correlationid": event.correlationid,
    }


def _entries_table(entries: Iterable[tuple[str, str, Event]], title: str) -> Table:
    table = Table(title=title)
    table.add_column("entry", justify="right", no_wrap=True)
    for column in ("stream", "type", "subject"):
        table.add_column(column, no_wrap=True)
    table.add_column("seq", justify="right", no_wrap=True)
    table.add_column("time", no_wrap=True)
    table.add_column("correlation id", overflow="fold")
    for entry_id, stream, event in entries:
        table.add_row(
            entry_id,
            stream,
            event.type,
            event.subject,
            str(event.sequence),
            _when(event.time),
            event.correlationid or "-",
        )
    return table


def _dead_json(letter: DeadLetter) -> dict[str, Any]:
    return {
        "dead_letter_id": letter.dead_letter_id,
        "stream": letter.stream,
        "group": letter.group,
        "entry_id": letter.entry_id,
        "event": _entry_json(letter.entry_id, letter.stream, letter.event),
        "deliveries": letter.deliveries,
        "reason": letter.reason,
        "dead_at": letter.dead_at.isoformat(),
    }


def _entry_order(entry_id: str) -> tuple[int, ...]:
    """Engine entry ids in append order: ``42`` (embedded log), ``1700000000000-3``."""
    try:
        return tuple(int(part) for part in entry_id.split("-"))
    except ValueError:
        return (0,)


# -- tail -----------------------------------------------------------------------------


async def last_entries(
    bus: EventBus, stream: str | None, limit: int
) -> list[tuple[str, str, Event]]:
    """The last ``limit`` entries (of one stream, or of all), oldest first."""
    window: deque[tuple[str, str, Event]] = deque(maxlen=max(limit, 0))
    after: str | None = None
    while True:
        page = await bus.read_all(stream, after=after, limit=_PAGE)
        window.extend(page)
        if len(page) < _PAGE:
            return list(window)
        after = page[-1][0]


def _print_followed(entry: tuple[str, str, Event], as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(_entry_json(*entry)))
        return
    entry_id, entry_stream, event = entry
    console.print(
        f"{entry_id:>8}  {entry_stream}  [bold]{event.type}[/bold]  "
        f"{event.subject}  #{event.sequence}  {_when(event.time)}  "
        f"{event.correlationid or '-'}",
        highlight=False,
    )


async def _follow(
    opened: EventBus, stream: str | None, after: str | None, seconds: float | None, as_json: bool
) -> None:
    """Print entries as they are appended after ``after``, until ``seconds`` have passed."""
    if after is None:  # an empty window (--limit 0): start from the head
        head = await last_entries(opened, stream, 1)
        after = head[-1][0] if head else None
    deadline = None if seconds is None else time.monotonic() + seconds
    while deadline is None or time.monotonic() < deadline:
        page = await opened.read_all(stream, after=after, limit=_PAGE)
        for entry in page:
            _print_followed(entry, as_json)
        if page:
            after = page[-1][0]
        if len(page) < _PAGE:
            await asyncio.sleep(0.25)


@events_app.command("tail")
def tail(
    stream: StreamOption = None,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing entries as they arrive.")
    ] = False,
    limit: Annotated[
        int, typer.Option("--limit", "-n", min=0, help="How many of the last entries to show.")
    ] = 20,
    seconds: Annotated[
        float | None,
        typer.Option("--seconds", help="With --follow: stop after this long (default: Ctrl-C)."),
    ] = None,
    as_json: AsJson = False,
    data_dir: DataDir = None,
    bus: BusUrl = None,
) -> None:
    """The last entries of the log (one stream, or every stream in append order)."""

    async def work(opened: EventBus) -> None:
        entries = await last_entries(opened, stream, limit)
        if as_json and not follow:
            items = [_entry_json(*entry) for entry in entries]
            typer.echo(json.dumps({"items": items, "next_cursor": None}))
            return
        if as_json:
            for entry in entries:
                typer.echo(json.dumps(_entry_json(*entry)))
        else:
            where = stream or "every stream"
            console.print(_entries_table(entries, f"Last {len(entries)} entries of {where}"))
        if follow:
            after = entries[-1][0] if entries else None
            await _follow(opened, stream, after, seconds, as_json)

    try:
        _run(data_dir, bus, work)
    except KeyboardInterrupt:
        return


# -- dead letters ---------------------------------------------------------------------


@dlq_app.command("list")
def dlq_list(
    stream: StreamOption = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="At most this many.")] = 100,
    as_json: AsJson = False,
    data_dir: DataDir = None,
    bus: BusUrl = None,
) -> None:
    """Dead letters, oldest first: the event, the group that gave up, and why."""
    letters = _run(data_dir, bus, lambda opened: opened.dead_letters(stream, limit))
    if as_json:
        items = [_dead_json(letter) for letter in letters]
        typer.echo(json.dumps({"items": items, "next_cursor": None}))
        return
    if not letters:
        console.print(f"No dead letters{f' on {stream}' if stream else ''}.")
        return
    table = Table(title=f"{len(letters)} dead letter(s)")
    table.add_column("id", justify="right", no_wrap=True)
    for column in ("stream", "group", "type", "subject"):
        table.add_column(column, no_wrap=True)
    table.add_column("seq", justify="right", no_wrap=True)
    table.add_column("tries", justify="right", no_wrap=True)
    table.add_column("dead at", no_wrap=True)
    table.add_column("reason", overflow="fold", min_width=20)
    for letter in letters:
        table.add_row(
            letter.dead_letter_id,
            letter.stream,
            letter.group,
            letter.event.type,
            letter.event.subject,
            str(letter.event.sequence),
            str(letter.deliveries),
            _when(letter.dead_at),
            letter.reason.splitlines()[0] if letter.reason else "",
        )
    console.print(table)
    console.print(
        "Fix the cause, then [bold]tally events replay --dlq ID[/bold] (or --all).",
        highlight=False,
    )


@dlq_app.command("show")
def dlq_show(
    dead_letter_id: Annotated[str, typer.Argument(help="The dead letter's id.")],
    data_dir: DataDir = None,
    bus: BusUrl = None,
) -> None:
    """One dead letter in full (JSON): the event, the reason with its traceback."""

    async def find(opened: EventBus) -> DeadLetter | None:
        letters = await opened.dead_letters(None, _EVERYTHING)
        return next((x for x in letters if x.dead_letter_id == dead_letter_id), None)

    letter = _run(data_dir, bus, find)
    if letter is None:
        errors.print(f"[red]error:[/red] no dead letter {dead_letter_id}")
        raise typer.Exit(1)
    body = _dead_json(letter)
    body["event"]["data"] = json.loads(bytes(letter.event.data))
    typer.echo(json.dumps(body, indent=2))


async def _replay(
    opened: EventBus, dlq: str | None, stream: str | None
) -> tuple[list[DeadLetter], list[str]]:
    """Re-publish one dead letter (``dlq``) or every one (of ``stream``); the replayed
    letters and the ids that were not found."""
    letters = await opened.dead_letters(stream if dlq is None else None, _EVERYTHING)
    if dlq is not None:
        letters = [x for x in letters if x.dead_letter_id == dlq]
        if not letters:
            return [], [dlq]
    # In the order the entries were first appended: an ordered subject's events
    # come back in their order.
    letters.sort(key=lambda x: (x.stream, _entry_order(x.entry_id), x.dead_letter_id))
    replayed: list[DeadLetter] = []
    missing: list[str] = []
    for letter in letters:
        if await opened.replay_dead_letter(letter.dead_letter_id):
            replayed.append(letter)
        else:  # replayed by someone else meanwhile
            missing.append(letter.dead_letter_id)
    return replayed, missing


def _replayed_table(replayed: list[DeadLetter]) -> Table:
    table = Table(title=f"Replayed {len(replayed)} dead letter(s)")
    for column in ("id", "stream", "group", "type", "subject"):
        table.add_column(column, no_wrap=True)
    table.add_column("event id", overflow="fold")
    for letter in replayed:
        table.add_row(
            letter.dead_letter_id,
            letter.stream,
            letter.group,
            letter.event.type,
            letter.event.subject,
            letter.event.id,
        )
    return table


@events_app.command("replay")
def replay(
    dlq: Annotated[str | None, typer.Option("--dlq", help="Re-publish this dead letter.")] = None,
    replay_all: Annotated[
        bool, typer.Option("--all", help="Re-publish every dead letter (of --stream).")
    ] = False,
    stream: StreamOption = None,
    as_json: AsJson = False,
    data_dir: DataDir = None,
    bus: BusUrl = None,
) -> None:
    """Re-publish dead letters to their stream after a fix: every group receives the
    event again, and the groups that applied it already drop it (their inbox)."""
    if (dlq is None) == (not replay_all):
        errors.print("[red]error:[/red] pass either --dlq ID or --all")
        raise typer.Exit(2)
    if dlq is not None and stream is not None:
        errors.print("[red]error:[/red] --stream goes with --all")
        raise typer.Exit(2)

    replayed, missing = _run(data_dir, bus, lambda opened: _replay(opened, dlq, stream))
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "replayed": [_dead_json(letter) for letter in replayed],
                    "not_found": missing,
                }
            )
        )
    else:
        if replayed:
            console.print(_replayed_table(replayed))
        elif replay_all:
            console.print("No dead letters to replay.")
        for dead_letter_id in missing:
            errors.print(f"[red]error:[/red] no dead letter {dead_letter_id}")
    if dlq is not None and missing:
        raise typer.Exit(1)


# -- lag ------------------------------------------------------------------------------


def _lag_json(row: GroupLag) -> dict[str, Any]:
    return {
        "group": row.group,
        "stream": row.stream,
        "pending": row.pending,
        "oldest_pending_seconds": round(row.oldest_pending_seconds, 3),
        "lag": row.lag,
    }


@events_app.command("lag")
def lag(
    as_json: AsJson = False,
    data_dir: DataDir = None,
    bus: BusUrl = None,
) -> None:
    """Per consumer group and stream: delivered but unacked (pending), the age of the
    oldest of them, and the entries not yet delivered (lag to the head)."""
    rows = _run(data_dir, bus, lambda opened: opened.lag())
    if as_json:
        typer.echo(json.dumps({"items": [_lag_json(row) for row in rows], "next_cursor": None}))
        return
    if not rows:
        console.print("No consumer groups yet.")
        return
    table = Table(title=f"{len(rows)} consumer group stream(s)")
    table.add_column("group")
    table.add_column("stream")
    table.add_column("pending", justify="right")
    table.add_column("oldest pending", justify="right")
    table.add_column("lag", justify="right")
    for row in rows:
        behind = row.pending or row.lag
        style = "yellow" if behind else None
        table.add_row(
            row.group,
            row.stream,
            str(row.pending),
            _age(row.oldest_pending_seconds) if row.pending else "-",
            str(row.lag),
            style=style,
        )
    console.print(table)
