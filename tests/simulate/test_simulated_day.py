"""`tally simulate` on a platform of its own (every service a real process, the code
path of `tally up`), on the embedded default and on PostgreSQL + Redis (the five
business databases on PostgreSQL, the event bus and the gateway's rate limits on
Redis): a small seeded day (2,000 lines) through the gateway ends with every accuracy
figure at zero, and the report's figures are what the platform's APIs say."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tally.launcher import launch
from tally.simulate.api import Party
from tally.simulate.plan import plan_day
from tally.simulate.report import MUST_BE_ZERO, _where_they_stopped
from tally.simulate.world import staff_credentials
from tests.support.platform import PlatformClient
from tests.support.ports import free_ports

pytestmark = pytest.mark.slow

LINES = 2000
SEED = 7


@pytest.fixture(scope="module")
def own_platform(
    tmp_path_factory: pytest.TempPathFactory, stack_env: dict[str, str]
) -> Iterator[tuple[PlatformClient, Path]]:
    data_dir = tmp_path_factory.mktemp("simulated-day")
    launched = launch(data_dir, ports=free_ports(), extra_env=stack_env, seed_demo=False)
    try:
        yield PlatformClient(launched), data_dir
    finally:
        launched.platform.stop()


@pytest.fixture(scope="module")
def report(
    own_platform: tuple[PlatformClient, Path],
    stack_env: dict[str, str],
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, Any]:
    platform, data_dir = own_platform
    output = tmp_path_factory.mktemp("report") / "day.json"
    command = ["simulate", "--lines", str(LINES), "--seed", str(SEED), "--json"]
    command += ["--gateway", platform.gateway, "--data-dir", str(data_dir)]
    command += ["--settle", "180", "--output", str(output)]
    ran = subprocess.run(
        [sys.executable, "-m", "tally", *command],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
        env={**os.environ, **stack_env},
    )
    assert output.exists(), ran.stderr[-3000:]
    found: dict[str, Any] = json.loads(output.read_text())
    found["exit_code"] = ran.returncode
    return found


def test_a_seeded_day_ends_with_every_accuracy_figure_at_zero(report: dict[str, Any]) -> None:
    if report["unsettled_orders"]:  # printed whole with the failure (its repr is cut)
        print(json.dumps(report["unsettled_orders"], indent=1))
    assert {name: report[name] for name in MUST_BE_ZERO} == dict.fromkeys(MUST_BE_ZERO, 0), (
        report["unsettled_orders"],
        report["orders"]["by_status"],
        report["simulator"]["outcomes"],
    )
    assert report["all_zero"] is True and report["exit_code"] == 0
    assert report["simulator"]["unexpected_answers"] == []
    assert report["lines"]["count"] > 0.8 * LINES  # refusals and abandoned carts aside
    units = report["lines"]["units"]
    assert units["shipped"] == units["invoiced"] > 0
    outcomes = report["simulator"]["outcomes"]
    for happened in (
        "placed",
        "credit_held",
        "credit_holds_released",
        "shipments",
        "purchase_orders_received",
    ):
        assert outcomes.get(happened, 0) > 0, (happened, outcomes)
    assert report["latency_seconds"]["accepted_to_released"]["count"] > 0


def test_the_reports_figures_are_the_platforms(
    report: dict[str, Any], own_platform: tuple[PlatformClient, Path]
) -> None:
    platform, _ = own_platform
    day = plan_day(SEED, LINES, report["tag"])
    orders: list[dict[str, Any]] = []
    with platform.client() as staff:
        for customer in day.customers:
            cursor: str | None = None
            while True:
                params = {"customer_id": customer.customer_id, "limit": 500}
                page = staff.get(
                    "/orders/v1/orders", params=params | ({"cursor": cursor} if cursor else {})
                ).json()
                orders += page["items"]
                cursor = page.get("next_cursor")
                if not cursor:
                    break
        ids = [o["order_id"] for o in orders]
        invoices = []
        for start in range(0, len(ids), 100):
            invoices += staff.get(
                "/billing/v1/invoices", params={"order_id": ids[start : start + 100], "limit": 500}
            ).json()["items"]
    assert report["orders"]["count"] == len(orders)
    moving = {"pending", "accepted", "on_hold", "backordered", "partially_allocated"}
    moving |= {"released", "partially_shipped"}
    assert report["orders_unsettled"] == sum(1 for o in orders if o["status"] in moving)
    shown = [o["order_id"] for o in orders if o["status"] in moving][:20]
    assert [o["order_id"] for o in report["unsettled_orders"]] == shown
    assert report["invoices"]["count"] == len(invoices)
    shipped = sum(line["shipped"] for o in orders for line in o["lines"])
    assert report["lines"]["units"]["shipped"] == shipped
    invoiced_units = sum(line["quantity"] for i in invoices for line in i["lines"])
    assert invoiced_units == shipped  # billed once, exactly what left the warehouse
    assert len({i["shipment_id"] for i in invoices}) == len(invoices)


def test_a_seed_plays_the_same_day() -> None:
    assert plan_day(SEED, LINES, "A") == plan_day(SEED, LINES, "A")
    assert plan_day(SEED, LINES, "A").intents != plan_day(SEED + 1, LINES, "A").intents
    assert plan_day(SEED, LINES, "A").lines == LINES


def test_the_cli_refuses_a_data_dir_without_a_platform(tmp_path: Path) -> None:
    ran = subprocess.run(
        [sys.executable, "-m", "tally", "simulate", "--data-dir", str(tmp_path), "--lines", "5"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert ran.returncode == 2
    assert "make up" in ran.stderr


def test_an_unsettled_order_is_reported_with_its_history_and_fulfillment_orders(
    report: dict[str, Any], own_platform: tuple[PlatformClient, Path]
) -> None:
    """Where an operator looks next for an order the day left moving (stop 39's CI: a
    fulfillment order cancelled at the warehouse by a cancellation that never finished),
    read as the platform's APIs answer it. Shown here for one of the day's orders."""
    platform, data_dir = own_platform
    customer_id = plan_day(SEED, LINES, report["tag"]).customers[0].customer_id
    with platform.client() as staff:
        shipped = {"customer_id": customer_id, "status": ["shipped", "completed"]}
        order_id = staff.get("/orders/v1/orders", params=shipped).json()["items"][0]["order_id"]
        history = staff.get(f"/orders/v1/orders/{order_id}/history").json()["items"]
        fulfillments = staff.get(
            "/wms/v1/fulfillment-orders", params={"order_id": order_id}
        ).json()["items"]

    async def reported() -> dict[str, Any]:
        entry: dict[str, Any] = {"order_id": order_id}
        async with httpx.AsyncClient(timeout=30) as http:
            await _where_they_stopped(
                Party(platform.gateway, staff_credentials(data_dir), http), [entry]
            )
        return entry

    entry = asyncio.run(reported())
    assert entry["history"] == [
        f"{h.get('from') or '-'} -> {h['to']}: {h['cause']}" for h in history
    ]
    assert entry["history"][0] == "- -> pending: placed"
    assert [
        (fo["fulfillment_order_id"], fo["status"], [line["shipped"] for line in fo["lines"]])
        for fo in entry["fulfillment_orders"]
    ] == [
        (fo["fulfillment_order_id"], fo["status"], [line.get("shipped", 0) for line in fo["lines"]])
        for fo in fulfillments
    ]
    assert fulfillments  # a shipped order went through one at least
