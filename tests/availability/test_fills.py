"""Backorders that fill and lines that are given back (decision 0030), through the
service over HTTP on SQLite and PostgreSQL, with the WMS's facts on the event log."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

from litestar.testing import TestClient

from shared.events.catalog import InventoryAllocated, InventoryReleased
from shared.settings import Settings
from tests.availability.helpers import (
    apply_and_wait,
    by_location,
    count,
    item,
    ledger_drift,
    movements,
    order,
    outbox_count,
    stock,
)
from tests.availability.test_object_access import as_unknown, bound
from tests.support.events import bus_events, shipment_dispatched
from tests.support.polling import eventually
from tests.support.problems import assert_problem
from tests.support.tokens import TestIssuer

ALLOCATIONS = "/availability/v1/allocations"


def fill(
    client: TestClient[Any],
    allocation_id: str,
    body: dict[str, Any] | None = None,
    *,
    key: str,
    headers: dict[str, str] | None = None,
) -> Any:
    return client.post(
        f"{ALLOCATIONS}/{allocation_id}/fill",
        json=body or {},
        headers={**(headers or {}), "Idempotency-Key": key},
    )


def release_lines(
    client: TestClient[Any], allocation_id: str, lines: list[dict[str, Any]], *, key: str
) -> Any:
    return client.post(
        f"{ALLOCATIONS}/{allocation_id}/line-releases",
        json={"reason": "line_cancelled", "lines": lines},
        headers={"Idempotency-Key": key},
    )


def lines_of(allocation: dict[str, Any]) -> list[tuple[str, int, int, int, int, int]]:
    """(sku, quantity, allocated, backordered, shipped, released) per line."""
    return [
        (x["sku"], x["quantity"], x["allocated"], x["backordered"], x["shipped"], x["released"])
        for x in allocation["lines"]
    ]


def availability_events(settings: Settings, type_: str) -> list[Any]:
    return [e for e in bus_events(settings, "tally.availability") if e.type == type_]


def books(client: TestClient[Any], *skus: str) -> list[Any]:
    """Positions and ledger of the skus: what a refusal must leave as it was."""
    return [(item(client, sku)["locations"], movements(client, sku)) for sku in skus]


def test_a_receipt_lets_the_backorder_fill_and_the_fill_says_where(
    client: TestClient[Any], settings: Settings
) -> None:
    stock(client, settings, "WH1", A=5)
    placed = order(client, "SO-1", [("A", 8)], policy="partial")
    assert lines_of(placed.json()) == [("A", 8, 5, 3, 0, 0)]
    apply_and_wait(client, settings, shipment_dispatched("SO-1", "WH1", [("A", 5, None)]))
    assert client.get(f"{ALLOCATIONS}/SO-1").json()["status"] == "shipped"
    nothing_yet = fill(client, "SO-1", key="fill-0")
    assert nothing_yet.status_code == 200, nothing_yet.text
    assert nothing_yet.json()["filled"] == []

    stock(client, settings, "WH1", A=2)
    stock(client, settings, "WH2", A=2)
    response = fill(client, "SO-1", key="fill-1")

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["filled"] == [
        {"sku": "A", "location_id": "WH1", "quantity": 2},
        {"sku": "A", "location_id": "WH2", "quantity": 1},
    ]
    allocation = body["allocation"]
    assert lines_of(allocation) == [("A", 8, 8, 0, 5, 0)]
    assert allocation["status"] == "partially_shipped"
    assert client.get(f"{ALLOCATIONS}/SO-1").json() == allocation
    assert by_location(client, "A") == {"WH1": (2, 2), "WH2": (2, 1)}
    assert item(client, "A")["available_to_promise"] == 1
    assert movements(client, "A")[-1]["reason"] == "backorder_fill"
    assert ledger_drift(settings) == {}

    filled = eventually(lambda: availability_events(settings, "inventory.allocated")[1:])
    assert (filled[0].subject, filled[0].sequence) == ("SO-1", allocation["version"])
    payload = filled[0].payload(InventoryAllocated)
    assert [(x.sku, x.location_id, x.quantity) for x in payload.lines] == [
        ("A", "WH1", 2),
        ("A", "WH2", 1),
    ]
    # Nothing is backordered any more: another fill allocates nothing and moves nothing.
    again = fill(client, "SO-1", key="fill-2")
    assert again.json() == {"allocation": allocation, "filled": []}
    assert item(client, "A")["available_to_promise"] == 1


def test_a_fill_takes_the_channels_strategy_and_the_ship_to(
    client: TestClient[Any], settings: Settings
) -> None:
    for location, region in (("WH1", "west"), ("WH2", "east")):
        client.put(f"/availability/v1/locations/{location}", json={"region": region})
    stored = client.put("/availability/v1/channels/web/strategy", json={"ranking": "nearest"})
    assert stored.status_code == 200, stored.text
    placed = order(client, "SO-1", [("A", 3)], channel="web", policy="partial", ship_to="east")
    assert placed.json()["status"] == "backordered"
    count(client, "A", "WH1", 5)
    count(client, "A", "WH2", 2)

    body = fill(client, "SO-1", {"ship_to": "east"}, key="fill-east").json()

    assert body["filled"] == [
        {"sku": "A", "location_id": "WH1", "quantity": 1},
        {"sku": "A", "location_id": "WH2", "quantity": 2},
    ]
    assert body["allocation"]["status"] == "allocated"


def test_a_fill_keeps_out_of_another_channels_ring_fence(
    client: TestClient[Any], settings: Settings
) -> None:
    placed = order(client, "SO-1", [("A", 5)], channel="web", policy="partial")
    assert placed.json()["status"] == "backordered"
    fence = {"sku": "A", "kind": "fence", "channel": "b2b", "quantity": 4}
    assert client.put("/availability/v1/channel-rules/b2b-A", json=fence).status_code == 200
    count(client, "A", "WH1", 6)

    body = fill(client, "SO-1", key="fill-fenced").json()

    assert body["filled"] == [{"sku": "A", "location_id": "WH1", "quantity": 2}]
    assert lines_of(body["allocation"]) == [("A", 5, 2, 3, 0, 0)]
    assert body["allocation"]["status"] == "partially_allocated"
    assert ledger_drift(settings) == {}


def test_ship_complete_fills_every_requested_unit_or_none(
    client: TestClient[Any], settings: Settings
) -> None:
    placed = order(client, "SO-1", [("A", 2), ("B", 1)], policy="ship_complete")
    assert placed.json()["status"] == "backordered"
    stock(client, settings, "WH1", A=5)
    before = books(client, "A")
    outbox_before = outbox_count(settings)

    short = fill(client, "SO-1", key="fill-short")

    assert short.status_code == 200, short.text
    assert short.json() == {"allocation": placed.json(), "filled": []}
    assert books(client, "A") == before
    assert outbox_count(settings) == outbox_before

    stock(client, settings, "WH1", B=1)
    body = fill(client, "SO-1", key="fill-whole").json()
    assert body["filled"] == [
        {"sku": "A", "location_id": "WH1", "quantity": 2},
        {"sku": "B", "location_id": "WH1", "quantity": 1},
    ]
    assert body["allocation"]["status"] == "allocated"
    assert by_location(client, "A") == {"WH1": (5, 2)}


def test_partial_fills_what_there_is_of_the_lines_asked(
    client: TestClient[Any], settings: Settings
) -> None:
    order(client, "SO-1", [("A", 4), ("B", 3)], policy="partial")
    count(client, "A", "WH1", 3)
    count(client, "B", "WH1", 3)

    body = fill(client, "SO-1", {"lines": [{"sku": "A", "quantity": 4}]}, key="f").json()

    assert body["filled"] == [{"sku": "A", "location_id": "WH1", "quantity": 3}]
    assert lines_of(body["allocation"]) == [("A", 4, 3, 1, 0, 0), ("B", 3, 0, 3, 0, 0)]
    assert body["allocation"]["status"] == "partially_allocated"


def test_a_fill_over_the_backorder_is_refused_and_changes_nothing(
    client: TestClient[Any], settings: Settings
) -> None:
    order(client, "SO-1", [("A", 4)], policy="partial")
    count(client, "A", "WH1", 10)
    before = books(client, "A")
    outbox_before = outbox_count(settings)

    over = fill(client, "SO-1", {"lines": [{"sku": "A", "quantity": 5}]}, key="over")
    unknown = fill(client, "SO-1", {"lines": [{"sku": "Z", "quantity": 1}]}, key="unknown")
    twice = fill(
        client,
        "SO-1",
        {"lines": [{"sku": "A", "quantity": 1}, {"sku": "A", "quantity": 1}]},
        key="twice",
    )

    problem = assert_problem(over, 422, "fill-exceeds-backorder")
    assert problem["errors"] == [{"sku": "A", "requested": 5, "backordered": 4}]
    assert assert_problem(unknown, 422, "fill-exceeds-backorder")["errors"][0]["backordered"] == 0
    assert_problem(twice, 422, "duplicate-line")
    assert_problem(fill(client, "SO-1", {"lines": []}, key="empty"), 400)
    assert_problem(fill(client, "NOPE", key="nope"), 404, "allocation-not-found")
    assert books(client, "A") == before
    assert outbox_count(settings) == outbox_before
    # A refusal stores no key: the same key may then fill what is backordered.
    assert fill(client, "SO-1", {"lines": [{"sku": "A", "quantity": 4}]}, key="over").json()[
        "filled"
    ] == [{"sku": "A", "location_id": "WH1", "quantity": 4}]


def test_a_fill_needs_an_idempotency_key_and_replays_its_answer(
    client: TestClient[Any], settings: Settings
) -> None:
    order(client, "SO-1", [("A", 4)], policy="partial")
    count(client, "A", "WH1", 3)
    missing = client.post(f"{ALLOCATIONS}/SO-1/fill", json={})
    assert_problem(missing, 400)

    first = fill(client, "SO-1", key="fill-k")
    count(client, "A", "WH1", 10, expected=3)
    replayed = fill(client, "SO-1", key="fill-k")
    reused = fill(client, "SO-1", {"lines": [{"sku": "A", "quantity": 1}]}, key="fill-k")

    assert first.status_code == replayed.status_code == 200
    assert replayed.headers.get("Idempotent-Replayed") == "true"
    assert replayed.json() == first.json()
    assert first.json()["filled"] == [{"sku": "A", "location_id": "WH1", "quantity": 3}]
    assert_problem(reused, 422, "idempotency-key-reused")
    assert by_location(client, "A") == {"WH1": (10, 3)}
    # A new key fills the rest.
    rest = fill(client, "SO-1", key="fill-k2").json()
    assert rest["filled"] == [{"sku": "A", "location_id": "WH1", "quantity": 1}]
    assert by_location(client, "A") == {"WH1": (10, 4)}
    assert ledger_drift(settings) == {}


def test_another_customers_allocation_cannot_be_filled_or_released(
    client: TestClient[Any], settings: Settings, issuer: TestIssuer
) -> None:
    a, b = bound(issuer, "CUST-A"), bound(issuer, "CUST-B")
    placed = order(client, "SO-A1", [("A", 4)], policy="partial", customer_id="CUST-A")
    assert placed.json()["status"] == "backordered"
    count(client, "A", "WH1", 10)
    before = books(client, "A")

    unknown = fill(client, "SO-NONE", key="b-0", headers=b)
    others = fill(client, "SO-A1", key="b-1", headers=b)
    release = client.post(
        f"{ALLOCATIONS}/SO-A1/line-releases",
        json={"reason": "line_cancelled", "lines": [{"sku": "A", "cancel_backordered": 1}]},
        headers={**b, "Idempotency-Key": "b-2"},
    )

    assert_problem(unknown, 404, "allocation-not-found")
    assert as_unknown(assert_problem(others, 404), "SO-A1", "SO-NONE") == as_unknown(
        unknown.json(), "SO-NONE", "SO-NONE"
    )
    assert_problem(release, 404, "allocation-not-found")
    assert books(client, "A") == before
    assert client.get(f"{ALLOCATIONS}/SO-A1").json() == placed.json()

    own = fill(client, "SO-A1", key="a-1", headers=a)
    assert own.status_code == 200, own.text
    assert own.json()["filled"] == [{"sku": "A", "location_id": "WH1", "quantity": 4}]


def test_a_released_allocation_cannot_be_filled(
    client: TestClient[Any], settings: Settings
) -> None:
    order(client, "SO-1", [("A", 4)], policy="partial")
    assert client.post(f"{ALLOCATIONS}/SO-1/release").json()["status"] == "released"
    count(client, "A", "WH1", 10)

    assert_problem(fill(client, "SO-1", key="late"), 409, "allocation-released")
    line = [{"sku": "A", "cancel_backordered": 1}]
    assert_problem(release_lines(client, "SO-1", line, key="late-2"), 409, "allocation-released")
    assert by_location(client, "A") == {"WH1": (10, 0)}


def test_a_line_release_gives_units_back_and_a_cancel_lowers_the_backorder(
    client: TestClient[Any], settings: Settings
) -> None:
    stock(client, settings, "WH1", A=3)
    stock(client, settings, "WH2", A=2)
    placed = order(client, "SO-1", [("A", 8)], policy="partial").json()
    assert lines_of(placed) == [("A", 8, 5, 3, 0, 0)]
    assert item(client, "A")["available_to_promise"] == 0

    response = release_lines(
        client,
        "SO-1",
        [{"sku": "A", "release": 2, "cancel_backordered": 1, "location_id": "WH2"}],
        key="lr-1",
    )

    assert response.status_code == 200, response.text
    body = response.json()
    assert lines_of(body) == [("A", 7, 5, 2, 0, 2)]
    assert [
        (x["location_id"], x["quantity"], x["released"]) for x in body["lines"][0]["locations"]
    ] == [
        ("WH1", 3, 0),
        ("WH2", 2, 2),
    ]
    assert body["status"] == "partially_allocated"
    assert body["version"] == placed["version"] + 1
    assert item(client, "A")["available_to_promise"] == 2
    assert by_location(client, "A") == {"WH1": (3, 3), "WH2": (2, 0)}
    assert movements(client, "A")[-1]["reason"] == "line_release"
    assert ledger_drift(settings) == {}
    released = eventually(lambda: availability_events(settings, "inventory.released"))
    assert (released[0].subject, released[0].sequence) == ("SO-1", body["version"])
    payload = released[0].payload(InventoryReleased)
    assert payload.reason == "line_cancelled"
    assert [(x.sku, x.location_id, x.quantity) for x in payload.lines] == [("A", "WH2", 2)]

    replayed = release_lines(
        client,
        "SO-1",
        [{"sku": "A", "release": 2, "cancel_backordered": 1, "location_id": "WH2"}],
        key="lr-1",
    )
    assert replayed.json() == body and replayed.headers.get("Idempotent-Replayed") == "true"
    assert item(client, "A")["available_to_promise"] == 2


def test_a_line_release_over_what_is_open_or_backordered_changes_nothing(
    client: TestClient[Any], settings: Settings
) -> None:
    stock(client, settings, "WH1", A=5, B=2)
    placed = order(client, "SO-1", [("A", 8), ("B", 2)], policy="partial").json()
    before = books(client, "A", "B")
    outbox_before = outbox_count(settings)

    response = release_lines(
        client,
        "SO-1",
        [{"sku": "B", "release": 1}, {"sku": "A", "release": 6, "cancel_backordered": 4}],
        key="too-much",
    )

    problem = assert_problem(response, 409, "release-exceeds-line")
    assert problem["errors"] == [
        {"sku": "A", "field": "release", "requested": 6, "available": 5},
        {"sku": "A", "field": "cancel_backordered", "requested": 4, "available": 3},
    ]
    assert books(client, "A", "B") == before
    assert outbox_count(settings) == outbox_before
    assert client.get(f"{ALLOCATIONS}/SO-1").json() == placed


def test_lines_released_whole_then_shipped_settle_the_status(
    client: TestClient[Any], settings: Settings
) -> None:
    stock(client, settings, "WH1", A=5, B=2)
    order(client, "SO-1", [("A", 5), ("B", 4)], policy="partial")

    short = release_lines(
        client, "SO-1", [{"sku": "A", "release": 2}, {"sku": "B", "cancel_backordered": 2}], key="s"
    ).json()
    assert lines_of(short) == [("A", 5, 5, 0, 0, 2), ("B", 2, 2, 0, 0, 0)]
    assert short["status"] == "allocated"
    apply_and_wait(
        client, settings, shipment_dispatched("SO-1", "WH1", [("A", 3, None), ("B", 2, None)])
    )
    assert client.get(f"{ALLOCATIONS}/SO-1").json()["status"] == "shipped"

    order(client, "SO-2", [("B", 1)], policy="partial")
    gone = release_lines(client, "SO-2", [{"sku": "B", "cancel_backordered": 1}], key="g")
    assert gone.json()["status"] == "released"
    assert ledger_drift(settings) == {}


def test_a_fill_without_a_body_fills_every_backorder(
    client: TestClient[Any], settings: Settings
) -> None:
    order(client, "SO-1", [("A", 2)], policy="partial")
    count(client, "A", "WH1", 2)

    response = client.post(f"{ALLOCATIONS}/SO-1/fill", headers={"Idempotency-Key": "bare"})

    assert response.status_code == 200, response.text
    assert response.json()["filled"] == [{"sku": "A", "location_id": "WH1", "quantity": 2}]


def test_concurrent_fills_and_allocations_never_promise_more_than_arrived(
    client: TestClient[Any], settings: Settings
) -> None:
    orders = [f"SO-{n}" for n in range(6)]
    for order_id in orders:
        assert order(client, order_id, [("A", 2)], policy="partial").status_code == 201
    count(client, "A", "WH1", 7)

    def fill_or_allocate(n: int) -> int:
        if n % 4 == 3:  # a new order competes for the same units
            placed = order(client, f"NEW-{n}", [("A", 1)], policy="partial").json()
            return int(placed["lines"][0]["allocated"])
        body = fill(client, orders[n % len(orders)], key=f"fill-{n}").json()
        return sum(int(x["quantity"]) for x in body["filled"])

    with ThreadPoolExecutor(max_workers=8) as pool:
        taken = sum(pool.map(fill_or_allocate, range(12)))

    assert taken == 7
    assert by_location(client, "A") == {"WH1": (7, 7)}
    allocated = [client.get(f"{ALLOCATIONS}/{o}").json()["lines"][0] for o in orders]
    assert all(x["allocated"] + x["backordered"] == 2 for x in allocated)
    assert ledger_drift(settings) == {}


def test_a_short_pick_backorders_its_units_again_and_a_fill_takes_them_later(
    client: TestClient[Any], settings: Settings
) -> None:
    stock(client, settings, "WH1", A=5)
    order(client, "SO-1", [("A", 5)], policy="partial")
    short = [{"sku": "A", "release": 2, "backorder": 2}]
    too_much = [{"sku": "A", "release": 1, "backorder": 2}]
    assert_problem(
        release_lines(client, "SO-1", too_much, key="bad"), 422, "backorder-exceeds-release"
    )

    response = client.post(
        f"{ALLOCATIONS}/SO-1/line-releases",
        json={"reason": "short_pick", "lines": short},
        headers={"Idempotency-Key": "short-1"},
    )

    assert response.status_code == 200, response.text
    assert lines_of(response.json()) == [("A", 5, 3, 2, 0, 0)]
    assert response.json()["status"] == "partially_allocated"
    assert by_location(client, "A") == {"WH1": (5, 3)}
    stock(client, settings, "WH2", A=2)
    body = fill(client, "SO-1", key="refill").json()
    assert body["filled"] == [{"sku": "A", "location_id": "WH1", "quantity": 2}]
    assert lines_of(body["allocation"]) == [("A", 5, 5, 0, 0, 0)]
    assert ledger_drift(settings) == {}
