from __future__ import annotations

from typing import Any

from litestar.testing import TestClient

from shared.events.catalog import FulfillmentReleased, ShipmentDispatched
from shared.settings import Settings
from tests.support.events import bus_events
from tests.support.polling import eventually
from tests.wms.helpers import add_warehouse, outbox_count, receive, release, stock_of


def ship(client: TestClient[Any], fo_id: str, lines: list[dict[str, Any]], *, key: str) -> Any:
    return client.post(
        f"/wms/v1/fulfillment-orders/{fo_id}/shipments",
        json={"carrier": "UPS", "tracking_number": f"1Z{key}", "lines": lines},
        headers={"Idempotency-Key": key},
    )


def setup_stock(client: TestClient[Any]) -> None:
    add_warehouse(client)
    receive(client, [{"sku": "A", "quantity": 10}, {"sku": "B", "quantity": 4}], key="rcv")


def test_release_then_ship_in_two_parts(client: TestClient[Any], settings: Settings) -> None:
    setup_stock(client)
    fo = release(client, [{"sku": "A", "quantity": 6}, {"sku": "B", "quantity": 2}], key="fo")
    fo_id = fo["fulfillment_order_id"]
    assert fo_id.startswith("FO-")
    assert fo["status"] == "released"
    assert fo["lines"] == [
        {"sku": "A", "quantity": 6, "shipped": 0, "picked": 0},
        {"sku": "B", "quantity": 2, "shipped": 0, "picked": 0},
    ]

    first = ship(client, fo_id, [{"sku": "A", "quantity": 4}], key="s1")
    assert first.status_code == 201, first.text
    shipment = first.json()
    assert shipment["shipment_id"].startswith("SHP-")
    assert shipment["order_id"] == "SO-1"
    assert shipment["warehouse_id"] == "WH1"
    assert shipment["lines"] == [{"sku": "A", "quantity": 4, "lot": None}]
    fo_now = client.get(f"/wms/v1/fulfillment-orders/{fo_id}").json()
    assert fo_now["status"] == "partially_shipped"
    assert stock_of(client, "A") == {("WH1", None): 6}

    second = ship(
        client, fo_id, [{"sku": "A", "quantity": 2}, {"sku": "B", "quantity": 2}], key="s2"
    )
    assert second.status_code == 201, second.text
    fo_now = client.get(f"/wms/v1/fulfillment-orders/{fo_id}").json()
    assert fo_now["status"] == "shipped"
    assert [line["shipped"] for line in fo_now["lines"]] == [6, 2]
    assert stock_of(client, "A") == {("WH1", None): 4}
    assert stock_of(client, "B") == {("WH1", None): 2}

    events = eventually(lambda: [e for e in bus_events(settings) if e.type != "receipt.posted"][2:])
    assert events, "the relay did not publish"
    kinds = [e.type for e in bus_events(settings)]
    assert kinds == [
        "receipt.posted",
        "fulfillment.released",
        "shipment.dispatched",
        "shipment.dispatched",
    ]
    published = bus_events(settings)
    # Stock changes are events of the warehouse, numbered by its stock version; the
    # fulfillment order's release is its own aggregate's first event.
    assert [(e.subject, e.sequence) for e in published] == [
        ("warehouse:WH1", 1),
        (fo_id, 1),
        ("warehouse:WH1", 2),
        ("warehouse:WH1", 3),
    ]
    assert published[1].payload(FulfillmentReleased).fulfillment_order_id == fo_id
    dispatched = published[2].payload(ShipmentDispatched)
    assert dispatched.shipment_id == shipment["shipment_id"]
    assert dispatched.order_id == "SO-1"
    assert [(x.sku, x.quantity) for x in dispatched.lines] == [("A", 4)]
    assert outbox_count(settings) == 4


def test_shipments_of_a_fulfillment_order_are_paged(client: TestClient[Any]) -> None:
    setup_stock(client)
    fo_id = release(client, [{"sku": "A", "quantity": 3}], key="fo")["fulfillment_order_id"]
    for n in range(3):
        assert ship(client, fo_id, [{"sku": "A", "quantity": 1}], key=f"s{n}").status_code == 201
    path = f"/wms/v1/fulfillment-orders/{fo_id}/shipments"
    seen: list[str] = []
    cursor = None
    for _ in range(3):
        page = client.get(path, params={"limit": 2} | ({"cursor": cursor} if cursor else {}))
        assert page.status_code == 200, page.text
        body = page.json()
        seen += [shipment["shipment_id"] for shipment in body["items"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    everything = client.get(path).json()
    assert everything["next_cursor"] is None
    assert seen == sorted(seen) == [s["shipment_id"] for s in everything["items"]]
    assert len(seen) == 3


def test_over_shipment_is_409_and_changes_nothing(
    client: TestClient[Any], settings: Settings
) -> None:
    setup_stock(client)
    fo_id = release(client, [{"sku": "A", "quantity": 5}], key="fo")["fulfillment_order_id"]
    assert ship(client, fo_id, [{"sku": "A", "quantity": 3}], key="s1").status_code == 201
    before = client.get(f"/wms/v1/fulfillment-orders/{fo_id}").json()
    outbox_before = outbox_count(settings)

    too_many = ship(client, fo_id, [{"sku": "A", "quantity": 3}], key="s2")
    not_ordered = ship(client, fo_id, [{"sku": "B", "quantity": 1}], key="s3")

    for response in (too_many, not_ordered):
        assert response.status_code == 409
        assert response.json()["type"] == "/problems/over-shipment"
    assert client.get(f"/wms/v1/fulfillment-orders/{fo_id}").json() == before
    assert stock_of(client, "A") == {("WH1", None): 7}
    assert stock_of(client, "B") == {("WH1", None): 4}
    assert outbox_count(settings) == outbox_before
    shipments = client.get(f"/wms/v1/fulfillment-orders/{fo_id}/shipments").json()["items"]
    assert len(shipments) == 1


def test_shipment_beyond_stock_is_409_and_changes_nothing(
    client: TestClient[Any], settings: Settings
) -> None:
    setup_stock(client)
    fo_id = release(client, [{"sku": "B", "quantity": 9}], key="fo")["fulfillment_order_id"]
    outbox_before = outbox_count(settings)

    response = ship(client, fo_id, [{"sku": "B", "quantity": 5}], key="s1")

    assert response.status_code == 409
    assert response.json()["type"] == "/problems/insufficient-stock"
    assert client.get(f"/wms/v1/fulfillment-orders/{fo_id}").json()["status"] == "released"
    assert stock_of(client, "B") == {("WH1", None): 4}
    assert outbox_count(settings) == outbox_before


def test_shipment_replay_ships_once(client: TestClient[Any], settings: Settings) -> None:
    setup_stock(client)
    fo_id = release(client, [{"sku": "A", "quantity": 5}], key="fo")["fulfillment_order_id"]
    first = ship(client, fo_id, [{"sku": "A", "quantity": 2}], key="s1")
    again = ship(client, fo_id, [{"sku": "A", "quantity": 2}], key="s1")

    assert again.status_code == 201
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert again.json()["shipment_id"] == first.json()["shipment_id"]
    assert stock_of(client, "A") == {("WH1", None): 8}
    assert outbox_count(settings) == 3  # receipt, release, one shipment


def test_lots_are_carried_and_drawn(client: TestClient[Any], settings: Settings) -> None:
    add_warehouse(client)
    receive(
        client,
        [
            {"sku": "A", "quantity": 2},
            {"sku": "A", "quantity": 3, "lot": "L1"},
            {"sku": "A", "quantity": 4, "lot": "L2"},
        ],
        key="rcv",
    )
    fo_id = release(client, [{"sku": "A", "quantity": 9}], key="fo")["fulfillment_order_id"]

    named = ship(client, fo_id, [{"sku": "A", "quantity": 4, "lot": "L2"}], key="s1")
    assert named.status_code == 201, named.text
    assert named.json()["lines"] == [{"sku": "A", "quantity": 4, "lot": "L2"}]

    unnamed = ship(client, fo_id, [{"sku": "A", "quantity": 4}], key="s2")
    assert unnamed.status_code == 201, unnamed.text
    assert unnamed.json()["lines"] == [
        {"sku": "A", "quantity": 2, "lot": None},
        {"sku": "A", "quantity": 2, "lot": "L1"},
    ]
    assert stock_of(client, "A") == {("WH1", None): 0, ("WH1", "L1"): 1, ("WH1", "L2"): 0}

    missing_lot = ship(client, fo_id, [{"sku": "A", "quantity": 1, "lot": "L2"}], key="s3")
    assert missing_lot.status_code == 409
    assert missing_lot.json()["type"] == "/problems/insufficient-stock"

    eventually(lambda: len(bus_events(settings)) == 4)
    dispatched = [e for e in bus_events(settings) if e.type == "shipment.dispatched"]
    # The refused shipment rolled back its version: no gap for the consumers to wait on.
    assert [e.sequence for e in dispatched] == [2, 3]
    lines = dispatched[-1].payload(ShipmentDispatched).lines
    assert [(x.sku, x.quantity, x.lot) for x in lines] == [("A", 2, None), ("A", 2, "L1")]


def test_cancel_before_shipping_but_not_after(client: TestClient[Any]) -> None:
    setup_stock(client)
    open_fo = release(client, [{"sku": "A", "quantity": 1}], key="fo1")["fulfillment_order_id"]
    shipped_fo = release(client, [{"sku": "A", "quantity": 1}], key="fo2")["fulfillment_order_id"]
    assert ship(client, shipped_fo, [{"sku": "A", "quantity": 1}], key="s1").status_code == 201

    cancelled = client.post(f"/wms/v1/fulfillment-orders/{open_fo}/cancel")
    assert cancelled.status_code == 200
    assert cancelled.json()["status"] == "cancelled"
    assert client.post(f"/wms/v1/fulfillment-orders/{open_fo}/cancel").status_code == 200

    late = ship(client, open_fo, [{"sku": "A", "quantity": 1}], key="s2")
    assert late.status_code == 409
    refused = client.post(f"/wms/v1/fulfillment-orders/{shipped_fo}/cancel")
    assert refused.status_code == 409
    assert refused.json()["type"] == "/problems/invalid-fulfillment-status"
    assert client.post("/wms/v1/fulfillment-orders/FO-nope/cancel").status_code == 404


def test_fulfillment_order_checks(client: TestClient[Any]) -> None:
    add_warehouse(client)
    unknown = client.post(
        "/wms/v1/fulfillment-orders",
        json={"order_id": "SO-1", "warehouse_id": "NOPE", "lines": [{"sku": "A", "quantity": 1}]},
        headers={"Idempotency-Key": "k1"},
    )
    duplicate = client.post(
        "/wms/v1/fulfillment-orders",
        json={
            "order_id": "SO-1",
            "warehouse_id": "WH1",
            "lines": [{"sku": "A", "quantity": 1}, {"sku": "A", "quantity": 2}],
        },
        headers={"Idempotency-Key": "k2"},
    )
    assert unknown.status_code == 422
    assert unknown.json()["type"] == "/problems/unknown-warehouse"
    assert duplicate.status_code == 422
    assert client.get("/wms/v1/fulfillment-orders/FO-nope").status_code == 404
    missing = ship(client, "FO-nope", [{"sku": "A", "quantity": 1}], key="s")
    assert missing.status_code == 404


def test_list_fulfillment_orders_by_order_and_page(client: TestClient[Any]) -> None:
    add_warehouse(client)
    ids = [
        release(client, [{"sku": "A", "quantity": 1}], order_id=order, key=f"fo{n}")[
            "fulfillment_order_id"
        ]
        for n, order in enumerate(["SO-1", "SO-2", "SO-1", "SO-1"])
    ]

    of_one = client.get("/wms/v1/fulfillment-orders", params={"order_id": "SO-2"}).json()
    assert [fo["fulfillment_order_id"] for fo in of_one["items"]] == [ids[1]]
    of_two = client.get(
        "/wms/v1/fulfillment-orders", params=[("order_id", "SO-2"), ("order_id", "SO-1")]
    ).json()
    assert [fo["fulfillment_order_id"] for fo in of_two["items"]] == ids

    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"order_id": "SO-1", "limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = client.get("/wms/v1/fulfillment-orders", params=params).json()
        seen += [fo["fulfillment_order_id"] for fo in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == [ids[0], ids[2], ids[3]]


def test_the_pick_queue_lists_fulfillment_orders_by_status(client: TestClient[Any]) -> None:
    setup_stock(client)
    ids = [
        release(client, [{"sku": "A", "quantity": 2}], key=f"fo{n}")["fulfillment_order_id"]
        for n in range(4)
    ]
    assert ship(client, ids[0], [{"sku": "A", "quantity": 2}], key="s0").status_code == 201
    assert ship(client, ids[1], [{"sku": "A", "quantity": 1}], key="s1").status_code == 201
    assert client.post(f"/wms/v1/fulfillment-orders/{ids[2]}/cancel").status_code == 200

    def listed(*statuses: str) -> list[str]:
        params = [("status", s) for s in statuses]
        page = client.get("/wms/v1/fulfillment-orders", params=params).json()
        return [fo["fulfillment_order_id"] for fo in page["items"]]

    assert listed("released", "partially_shipped") == [ids[1], ids[3]]
    assert listed("shipped") == [ids[0]]
    assert listed("cancelled") == [ids[2]]
    assert listed() == ids
    unknown = client.get("/wms/v1/fulfillment-orders", params={"status": "picked-up"})
    assert unknown.status_code == 400
    assert unknown.headers["content-type"].startswith("application/problem+json")
