"""`tally events ...` against a real embedded log in a data dir."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from shared.events.envelope import Event
from shared.events.sqlite_log import SqliteEventLog
from tally import cli
from tally.commands import events as events_cli
from tally.commands.events import events_app
from tests.support.events import thing_event

runner = CliRunner()


@dataclass
class Log:
    data_dir: Path
    wms: list[Event]
    orders: list[Event]
    poison: Event

    @property
    def path(self) -> Path:
        return self.data_dir / "events.db"

    def run(self, coro_fn: object) -> object:
        async def main() -> object:
            log = SqliteEventLog(self.path)
            try:
                return await coro_fn(log)  # type: ignore[operator]
            finally:
                await log.close()

        return asyncio.run(main())


@pytest.fixture(autouse=True)
def _wide_console(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tables as a wide terminal shows them (nothing cut), whatever the CI's width."""
    monkeypatch.setattr(events_cli, "console", Console(width=250))
    monkeypatch.delenv("TALLY_BUS_URL", raising=False)
    monkeypatch.delenv("TALLY_DATA_DIR", raising=False)


@pytest.fixture
def log(tmp_path: Path) -> Log:
    """Five WMS entries and two orders entries; group ``availability`` took all of
    tally.wms, acked four and dead-lettered the first; ``billing`` took two, acked none."""
    wms = [thing_event("warehouse:WH-1", n, 1, type_="receipt.posted") for n in range(1, 6)]
    orders = [thing_event(f"SO-{n}", 1, 1, type_="order.accepted") for n in range(1, 3)]
    setup = Log(tmp_path, wms, orders, wms[0])

    async def fill(bus: SqliteEventLog) -> None:
        await bus.publish("tally.wms", wms)
        await bus.publish("tally.orders", orders)
        taken = await bus.read_group("availability", "c1", ["tally.wms"], 10, 0)
        await bus.ack("availability", "tally.wms", [d.entry_id for d in taken[1:]])
        await bus.dead_letter(
            "availability", taken[0], "RuntimeError: boom (after 5 deliveries)\nTraceback: ..."
        )
        await bus.read_group("billing", "c1", ["tally.wms"], 2, 0)

    setup.run(fill)
    return setup


def invoke(log: Log, *args: str) -> tuple[int, str, str]:
    result = runner.invoke(events_app, [*args, "--data-dir", str(log.data_dir)])
    return result.exit_code, result.stdout, result.stderr


def test_tail_shows_the_last_entries_with_their_envelope(log: Log) -> None:
    code, out, _ = invoke(log, "tail", "--limit", "3", "--json")
    assert code == 0, out
    items = json.loads(out)["items"]
    assert [i["id"] for i in items] == [log.wms[4].id, log.orders[0].id, log.orders[1].id]
    assert items[0] == {
        "entry_id": "5",
        "stream": "tally.wms",
        "id": log.wms[4].id,
        "type": "receipt.posted",
        "source": "tally.test",
        "subject": "warehouse:WH-1",
        "sequence": 5,
        "time": log.wms[4].time.isoformat(),
        "correlationid": log.wms[4].correlationid,
    }

    code, out, _ = invoke(log, "tail", "--stream", "tally.wms", "-n", "2")
    assert code == 0, out
    assert "Last 2 entries of tally.wms" in out
    for header in ("entry", "stream", "type", "subject", "seq", "time", "correlation id"):
        assert header in out
    assert "receipt.posted" in out
    assert "warehouse:WH-1" in out
    assert "order.accepted" not in out
    lines = [line for line in out.splitlines() if "receipt.posted" in line]
    assert [line.split()[1] for line in lines] == ["4", "5"]  # entry ids, oldest first


def test_tail_follow_prints_what_arrives(log: Log) -> None:
    late = thing_event("warehouse:WH-1", 6, 1, type_="shipment.dispatched")

    def publish_later() -> None:
        time.sleep(0.5)
        log.run(lambda bus: bus.publish("tally.wms", [late]))

    publisher = threading.Thread(target=publish_later)
    publisher.start()
    try:
        code, out, _ = invoke(
            log, "tail", "--stream", "tally.wms", "-n", "1", "--follow", "--seconds", "2", "--json"
        )
    finally:
        publisher.join()
    assert code == 0, out
    lines = [json.loads(line) for line in out.splitlines()]
    assert [line["id"] for line in lines] == [log.wms[4].id, late.id]
    assert lines[1]["type"] == "shipment.dispatched"


def test_dlq_list_and_show(log: Log) -> None:
    code, out, _ = invoke(log, "dlq", "list", "--json")
    assert code == 0, out
    (letter,) = json.loads(out)["items"]
    assert letter["group"] == "availability"
    assert letter["stream"] == "tally.wms"
    assert letter["event"]["id"] == log.poison.id
    assert letter["reason"].startswith("RuntimeError: boom")

    code, out, _ = invoke(log, "dlq", "list")
    assert code == 0, out
    assert "1 dead letter(s)" in out
    assert "availability" in out
    assert "RuntimeError: boom (after 5 deliveries)" in out
    assert "Traceback" not in out  # the first line only; `dlq show` has the rest

    code, out, _ = invoke(log, "dlq", "list", "--stream", "tally.orders")
    assert code == 0
    assert "No dead letters on tally.orders." in out

    code, out, _ = invoke(log, "dlq", "show", letter["dead_letter_id"])
    assert code == 0, out
    shown = json.loads(out)
    assert shown["reason"] == "RuntimeError: boom (after 5 deliveries)\nTraceback: ..."
    assert shown["event"]["data"] == {"n": 1}

    code, _, err = invoke(log, "dlq", "show", "999")
    assert code == 1
    assert "no dead letter 999" in err


def test_replay_one_republishes_it_once_and_drops_the_dead_letter(log: Log) -> None:
    (letter,) = json.loads(invoke(log, "dlq", "list", "--json")[1])["items"]

    code, out, _ = invoke(log, "replay", "--dlq", letter["dead_letter_id"])
    assert code == 0, out
    assert "Replayed 1 dead letter(s)" in out
    assert log.poison.id in out

    assert json.loads(invoke(log, "dlq", "list", "--json")[1])["items"] == []
    tail = json.loads(invoke(log, "tail", "--stream", "tally.wms", "--json")[1])["items"]
    assert [i["id"] for i in tail].count(log.poison.id) == 2  # the original, the replay
    assert tail[-1]["id"] == log.poison.id

    # The availability group receives it again; nothing else of the stream.
    async def redelivered(bus: SqliteEventLog) -> list[str]:
        return [
            d.event.id for d in await bus.read_group("availability", "c2", ["tally.wms"], 10, 0)
        ]

    assert log.run(redelivered) == [log.poison.id]

    code, _, err = invoke(log, "replay", "--dlq", letter["dead_letter_id"])
    assert code == 1
    assert f"no dead letter {letter['dead_letter_id']}" in err


def test_replay_all_in_append_order(log: Log) -> None:
    async def more_dead(bus: SqliteEventLog) -> None:
        taken = await bus.read_group("orders-group", "c", ["tally.orders"], 10, 0)
        for delivery in reversed(taken):  # die in reverse order
            await bus.dead_letter("orders-group", delivery, "ValueError: nope")

    log.run(more_dead)
    code, out, _ = invoke(log, "replay", "--all", "--stream", "tally.orders", "--json")
    assert code == 0, out
    replayed = json.loads(out)["replayed"]
    assert [r["event"]["id"] for r in replayed] == [e.id for e in log.orders]
    remaining = json.loads(invoke(log, "dlq", "list", "--json")[1])["items"]
    assert [r["event"]["id"] for r in remaining] == [log.poison.id]

    code, out, _ = invoke(log, "replay", "--all")
    assert code == 0, out
    assert "Replayed 1 dead letter(s)" in out
    code, out, _ = invoke(log, "replay", "--all")
    assert code == 0
    assert "No dead letters to replay." in out


def test_replay_needs_exactly_one_of_dlq_or_all(log: Log) -> None:
    assert invoke(log, "replay")[0] == 2
    assert invoke(log, "replay", "--dlq", "1", "--all")[0] == 2
    code, _, err = invoke(log, "replay", "--dlq", "1", "--stream", "tally.wms")
    assert code == 2
    assert "--stream goes with --all" in err


def test_lag_per_group_and_stream(log: Log) -> None:
    code, out, _ = invoke(log, "lag", "--json")
    assert code == 0, out
    rows = {(r["group"], r["stream"]): r for r in json.loads(out)["items"]}
    assert rows[("availability", "tally.wms")]["pending"] == 0
    assert rows[("availability", "tally.wms")]["lag"] == 0
    assert rows[("availability", "tally.wms")]["oldest_pending_seconds"] == 0
    billing = rows[("billing", "tally.wms")]
    assert (billing["pending"], billing["lag"]) == (2, 3)
    assert billing["oldest_pending_seconds"] >= 0

    code, out, _ = invoke(log, "lag")
    assert code == 0, out
    billing_line = next(line for line in out.splitlines() if "billing" in line)
    cells = billing_line.replace("│", " ").split()
    assert cells[:3] == ["billing", "tally.wms", "2"]
    assert cells[-1] == "3"


def test_the_bus_url_option_and_variable_pick_the_log(log: Log, tmp_path: Path) -> None:
    url = f"sqlite:///{log.path}"
    elsewhere = tmp_path / "empty-dir"
    elsewhere.mkdir()
    result = runner.invoke(
        events_app, ["lag", "--json", "--bus", url, "--data-dir", str(elsewhere)]
    )
    assert result.exit_code == 0, result.output
    assert len(json.loads(result.stdout)["items"]) == 2

    result = runner.invoke(events_app, ["dlq", "list", "--json"], env={"TALLY_BUS_URL": url})
    assert result.exit_code == 0, result.output
    assert len(json.loads(result.stdout)["items"]) == 1

    result = runner.invoke(
        events_app, ["tail", "--json"], env={"TALLY_DATA_DIR": str(log.data_dir)}
    )
    assert result.exit_code == 0, result.output
    assert len(json.loads(result.stdout)["items"]) == 7


def test_a_data_dir_without_a_log_is_an_error_and_creates_nothing(tmp_path: Path) -> None:
    result = runner.invoke(events_app, ["tail", "--data-dir", str(tmp_path)])
    assert result.exit_code == 1
    assert "no event log at" in result.stderr
    assert not (tmp_path / "events.db").exists()

    result = runner.invoke(events_app, ["lag", "--bus", "redis://127.0.0.1:1/0"])
    assert result.exit_code == 1
    assert "the event bus failed: ConnectionError" in result.stderr

    result = runner.invoke(events_app, ["lag", "--bus", "kafka://nope"])
    assert result.exit_code == 2
    assert "unsupported TALLY_BUS_URL" in result.stderr


def test_the_main_cli_has_the_events_commands() -> None:
    result = runner.invoke(cli.app, ["events", "--help"])
    assert result.exit_code == 0
    for command in ("tail", "dlq", "replay", "lag"):
        assert command in result.stdout
