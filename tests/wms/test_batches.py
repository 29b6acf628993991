"""``POST /wms/v1/shipments/batch`` and ``POST /wms/v1/deliveries/batch``: a warehouse
confirms its shipments and a carrier reports its deliveries up to 100 at a time, each
item answered as its single call with the item's Idempotency-Key would answer it."""

from __future__ import annotations

from typing import Any

from litestar.testing import TestClient

from shared.events.catalog import ShipmentDelivered, ShipmentDispatched
from shared.settings import Settings
from tests.support.events import bus_events
from tests.support.problems import assert_problem
from tests.support.service import post
from tests.support.tokens import TestIssuer
from tests.wms.helpers import (
    add_warehouse,
    events_of,
    outbox_count,
    receive,
    release,
    stock_of,
    stock_sequences,
)

SHIPMENTS = "/wms/v1/shipments/batch"
DELIVERIES = "/wms/v1/deliveries/batch"


def shipment_body(*lines: tuple[str, int], tracking: str = "1Z1") -> dict[str, Any]:
    return {
        "carrier": "UPS",
        "tracking_number": tracking,
        "lines": [{"sku": sku, "quantity": quantity} for sku, quantity in lines],
    }


def ship_item(key: str, fo_id: str, *lines: tuple[str, int]) -> dict[str, Any]:
    return {
        "idempotency_key": key,
        "fulfillment_order_id": fo_id,
        "shipment": shipment_body(*lines, tracking=f"1Z-{key.replace(':', '-')}"),
    }


def delivery_item(key: str, shipment_id: str, **delivery: Any) -> dict[str, Any]:
    return {"idempotency_key": key, "shipment_id": shipment_id, "delivery": delivery}


def send(client: TestClient[Any], path: str, field: str, *items: dict[str, Any]) -> list[Any]:
    response = client.post(path, json={field: list(items)})
    assert response.status_code == 200, response.text
    results: list[dict[str, Any]] = response.json()["results"]
    assert [r["idempotency_key"] for r in results] == [i["idempotency_key"] for i in items]
    return results


def ship(client: TestClient[Any], *items: dict[str, Any]) -> list[dict[str, Any]]:
    return send(client, SHIPMENTS, "shipments", *items)


def deliver(client: TestClient[Any], *items: dict[str, Any]) -> list[dict[str, Any]]:
    return send(client, DELIVERIES, "deliveries", *items)


def made(result: dict[str, Any]) -> dict[str, Any]:
    assert result["refusal"] is None, result
    shipment: dict[str, Any] = result["shipment"]
    return shipment


def refused(result: dict[str, Any], status: int, slug: str) -> None:
    assert result["shipment"] is None, result
    assert (result["refusal"]["status"], result["refusal"]["type"]) == (status, f"/problems/{slug}")


def shipments_of(client: TestClient[Any], fo_id: str) -> list[dict[str, Any]]:
    response = client.get(f"/wms/v1/fulfillment-orders/{fo_id}/shipments")
    assert response.status_code == 200, response.text
    found: list[dict[str, Any]] = response.json()["items"]
    return found


def dispatched(settings: Settings) -> list[str]:
    return sorted(
        e.payload(ShipmentDispatched).shipment_id
        for e in bus_events(settings)
        if e.type == "shipment.dispatched"
    )


def released_orders(client: TestClient[Any]) -> list[str]:
    """Stock of A (10) and B (4) in WH1; SO-1 asks A 2, SO-2 A 3, SO-3 B 2."""
    add_warehouse(client)
    receive(client, [{"sku": "A", "quantity": 10}, {"sku": "B", "quantity": 4}], key="rcv")
    wanted = {"SO-1": ("A", 2), "SO-2": ("A", 3), "SO-3": ("B", 2)}
    return [
        release(client, [{"sku": sku, "quantity": q}], order_id=order_id, key=f"fo-{order_id}")[
            "fulfillment_order_id"
        ]
        for order_id, (sku, q) in wanted.items()
    ]


# --- shipments ---------------------------------------------------------------------


def test_a_batch_of_shipments_dispatches_each_and_emits_each_once(
    client: TestClient[Any], settings: Settings
) -> None:
    fo1, fo2, fo3 = released_orders(client)
    results = ship(
        client,
        ship_item("s:1", fo1, ("A", 2)),
        ship_item("s:2", fo2, ("A", 3)),
        ship_item("s:3", fo3, ("B", 2)),
    )
    shipments = [made(r) for r in results]
    assert [s["fulfillment_order_id"] for s in shipments] == [fo1, fo2, fo3]
    assert [s["order_id"] for s in shipments] == ["SO-1", "SO-2", "SO-3"]
    assert shipments[1]["lines"] == [{"sku": "A", "quantity": 3, "lot": None}]
    assert shipments[0]["tracking_number"] == "1Z-s-1"
    for fo_id, shipment in zip((fo1, fo2, fo3), shipments, strict=True):
        assert shipments_of(client, fo_id) == [shipment]
        fo = client.get(f"/wms/v1/fulfillment-orders/{fo_id}").json()
        assert fo["status"] == "shipped"
    assert stock_of(client, "A") == {("WH1", None): 5}
    assert stock_of(client, "B") == {("WH1", None): 2}
    events = events_of(settings, "shipment.dispatched", 3)
    assert len(events) == 3
    assert dispatched(settings) == sorted(s["shipment_id"] for s in shipments)
    # Each shipment's event carries its own stock version of the warehouse.
    sequences = stock_sequences(settings)
    assert len(sequences) == len(set(sequences))


def test_a_retried_shipment_batch_replays_and_writes_nothing(
    client: TestClient[Any], settings: Settings
) -> None:
    fo1, fo2, _ = released_orders(client)
    batch = [ship_item("s:1", fo1, ("A", 2)), ship_item("s:2", fo2, ("A", 3))]
    first = [made(r) for r in ship(client, *batch)]
    events_of(settings, "shipment.dispatched", 2)
    outbox = outbox_count(settings)
    again = [made(r) for r in ship(client, *batch)]
    assert again == first
    assert outbox_count(settings) == outbox
    assert stock_of(client, "A") == {("WH1", None): 5}
    assert shipments_of(client, fo1) == [first[0]]
    assert dispatched(settings) == sorted(s["shipment_id"] for s in first)


def test_a_single_call_and_a_batch_item_replay_each_other(
    client: TestClient[Any], settings: Settings
) -> None:
    fo1, fo2, _ = released_orders(client)
    (result,) = ship(client, ship_item("s:1", fo1, ("A", 2)))
    item = ship_item("s:1", fo1, ("A", 2))
    single = post(
        client, f"/wms/v1/fulfillment-orders/{fo1}/shipments", item["shipment"], key="s:1"
    )
    assert single.status_code == 201, single.text
    assert single.headers["Idempotent-Replayed"] == "true"
    assert single.json() == made(result)
    # And the other way round: a batch item replays what the single call dispatched.
    first = post(
        client,
        f"/wms/v1/fulfillment-orders/{fo2}/shipments",
        shipment_body(("A", 3), tracking="1Z-s-2"),
        key="s:2",
    )
    assert first.status_code == 201, first.text
    (replayed,) = ship(client, ship_item("s:2", fo2, ("A", 3)))
    assert made(replayed) == first.json()
    # The same key on another fulfillment order is another request: refused.
    (reused,) = ship(client, ship_item("s:2", fo1, ("A", 3)))
    refused(reused, 422, "idempotency-key-reused")
    assert len(shipments_of(client, fo1)) == len(shipments_of(client, fo2)) == 1
    assert len(events_of(settings, "shipment.dispatched", 2)) == 2


def test_a_refused_shipment_leaves_the_others_dispatched(
    client: TestClient[Any], settings: Settings
) -> None:
    fo1, fo2, fo3 = released_orders(client)
    outbox = outbox_count(settings)
    results = ship(
        client,
        ship_item("s:1", fo1, ("A", 2)),
        ship_item("s:2", fo2, ("A", 4)),  # more than released
        ship_item("s:3", "FO-NOWHERE", ("A", 1)),
        ship_item("s:4", fo3, ("B", 2)),
    )
    refused(results[1], 409, "over-shipment")
    refused(results[2], 404, "fulfillment-order-not-found")
    kept = [made(results[0]), made(results[3])]
    assert shipments_of(client, fo2) == []
    assert stock_of(client, "A") == {("WH1", None): 8}
    events_of(settings, "shipment.dispatched", 2)
    assert dispatched(settings) == sorted(s["shipment_id"] for s in kept)
    assert outbox_count(settings) == outbox + 2
    # A refused item stores nothing: its key may be used again, now well.
    (retried,) = ship(client, ship_item("s:2", fo2, ("A", 3)))
    assert made(retried)["fulfillment_order_id"] == fo2


def test_items_against_one_order_run_in_the_batch_order(client: TestClient[Any]) -> None:
    fo1, _, _ = released_orders(client)
    first, second = ship(client, ship_item("s:1", fo1, ("A", 1)), ship_item("s:2", fo1, ("A", 2)))
    assert made(first)["lines"][0]["quantity"] == 1
    refused(second, 409, "over-shipment")  # one of two remains open
    assert len(shipments_of(client, fo1)) == 1


def test_duplicate_keys_in_a_shipment_batch_are_a_problem_and_write_nothing(
    client: TestClient[Any], settings: Settings
) -> None:
    fo1, fo2, _ = released_orders(client)
    outbox = outbox_count(settings)
    response = client.post(
        SHIPMENTS,
        json={"shipments": [ship_item("s:1", fo1, ("A", 2)), ship_item("s:1", fo2, ("A", 3))]},
    )
    assert_problem(response, 422, "duplicate-idempotency-key")
    assert shipments_of(client, fo1) == shipments_of(client, fo2) == []
    assert outbox_count(settings) == outbox


def test_more_than_100_shipments_or_none_are_400(
    client: TestClient[Any], settings: Settings
) -> None:
    fo1, _, _ = released_orders(client)
    outbox = outbox_count(settings)
    items = [ship_item(f"s:{n}", fo1, ("A", 1)) for n in range(101)]
    assert_problem(client.post(SHIPMENTS, json={"shipments": items}), 400)
    assert_problem(client.post(SHIPMENTS, json={"shipments": []}), 400)
    unknown = {**ship_item("s:1", fo1, ("A", 1)), "priority": 1}
    assert_problem(client.post(SHIPMENTS, json={"shipments": [unknown]}), 400)
    assert shipments_of(client, fo1) == []
    assert outbox_count(settings) == outbox


def test_read_scope_cannot_dispatch_a_batch(client: TestClient[Any], issuer: TestIssuer) -> None:
    token = issuer.token("wms:read", audience="wms")
    headers = {"Authorization": f"Bearer {token}"}
    response = client.post(
        SHIPMENTS, json={"shipments": [ship_item("s:1", "FO-1", ("A", 1))]}, headers=headers
    )
    assert_problem(response, 403, "insufficient-scope", correlated=False)
    response = client.post(
        DELIVERIES, json={"deliveries": [delivery_item("d:1", "SH-1")]}, headers=headers
    )
    assert_problem(response, 403, "insufficient-scope", correlated=False)


# --- deliveries --------------------------------------------------------------------


def shipped(client: TestClient[Any]) -> list[dict[str, Any]]:
    fo1, fo2, fo3 = released_orders(client)
    return [
        made(r)
        for r in ship(
            client,
            ship_item("s:1", fo1, ("A", 2)),
            ship_item("s:2", fo2, ("A", 3)),
            ship_item("s:3", fo3, ("B", 2)),
        )
    ]


def delivered_events(settings: Settings, count: int) -> list[str]:
    return sorted(
        e.payload(ShipmentDelivered).shipment_id
        for e in events_of(settings, "shipment.delivered", count)
    )


def test_a_batch_of_deliveries_is_recorded_once_and_replayed(
    client: TestClient[Any], settings: Settings
) -> None:
    s1, s2, s3 = (s["shipment_id"] for s in shipped(client))
    at = "2031-01-02T03:04:05+00:00"
    batch = [delivery_item("d:1", s1, delivered_at=at), delivery_item("d:2", s2)]
    first = [made(r) for r in deliver(client, *batch)]
    assert [s["shipment_id"] for s in first] == [s1, s2]
    assert first[0]["delivered_at"] == "2031-01-02T03:04:05Z"
    assert first[1]["delivered_at"] is not None
    assert client.get(f"/wms/v1/shipments/{s1}").json() == first[0]
    assert client.get(f"/wms/v1/shipments/{s3}").json()["delivered_at"] is None
    assert delivered_events(settings, 2) == sorted([s1, s2])
    outbox = outbox_count(settings)

    # The retried batch replays; a new key for a delivered shipment answers it unchanged
    # (as the single delivery would) and emits nothing.
    assert [made(r) for r in deliver(client, *batch)] == first
    again, third = deliver(client, delivery_item("d:1b", s1), delivery_item("d:3", s3))
    assert made(again) == first[0]
    assert made(third)["delivered_at"] is not None
    assert delivered_events(settings, 3) == sorted([s1, s2, s3])
    assert outbox_count(settings) == outbox + 1
    # The single delivery answers what the batch recorded.
    single = client.post(f"/wms/v1/shipments/{s2}/delivery", json={})
    assert single.status_code == 200, single.text
    assert single.json() == first[1]
    assert outbox_count(settings) == outbox + 1


def test_an_unknown_shipment_is_refused_alone(client: TestClient[Any], settings: Settings) -> None:
    s1, s2, _ = (s["shipment_id"] for s in shipped(client))
    results = deliver(
        client,
        delivery_item("d:1", s1),
        delivery_item("d:2", "SH-NOWHERE"),
        delivery_item("d:3", s2, delivered_at="2001-01-01T00:00:00Z"),  # before dispatch
    )
    refused(results[1], 404, "shipment-not-found")
    assert results[2]["refusal"]["status"] == 422
    assert made(results[0])["delivered_at"] is not None
    assert client.get(f"/wms/v1/shipments/{s2}").json()["delivered_at"] is None
    assert delivered_events(settings, 1) == [s1]
    # A key reused on another shipment is another request: refused, the other recorded.
    reused, fresh = deliver(client, delivery_item("d:1", s2), delivery_item("d:2", s2))
    refused(reused, 422, "idempotency-key-reused")
    assert made(fresh)["shipment_id"] == s2
    assert delivered_events(settings, 2) == sorted([s1, s2])


def test_duplicate_keys_or_too_many_deliveries_write_nothing(
    client: TestClient[Any], settings: Settings
) -> None:
    s1, s2, _ = (s["shipment_id"] for s in shipped(client))
    outbox = outbox_count(settings)
    duplicate = [delivery_item("d:1", s1), delivery_item("d:1", s2)]
    assert_problem(
        client.post(DELIVERIES, json={"deliveries": duplicate}), 422, "duplicate-idempotency-key"
    )
    many = [delivery_item(f"d:{n}", s1) for n in range(101)]
    assert_problem(client.post(DELIVERIES, json={"deliveries": many}), 400)
    assert_problem(client.post(DELIVERIES, json={"deliveries": []}), 400)
    assert client.get(f"/wms/v1/shipments/{s1}").json()["delivered_at"] is None
    assert outbox_count(settings) == outbox
