"""After dispatch: the carrier delivers a shipment once (shipment.delivered), or reports
exceptions with a new promised date (shipment.delayed) until it is delivered."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from litestar.testing import TestClient

from shared.events.catalog import ShipmentDelayed, ShipmentDelivered
from shared.settings import Settings
from tests.support.problems import assert_problem
from tests.support.service import post
from tests.wms.helpers import add_warehouse, events_of, outbox_count, receive, release


def dispatch(client: TestClient[Any]) -> dict[str, Any]:
    add_warehouse(client)
    receive(client, [{"sku": "A", "quantity": 5}], key="rcv")
    fo_id = release(client, [{"sku": "A", "quantity": 2}], key="fo")["fulfillment_order_id"]
    shipped = post(
        client,
        f"/wms/v1/fulfillment-orders/{fo_id}/shipments",
        {"carrier": "UPS", "tracking_number": "1Z1", "lines": [{"sku": "A", "quantity": 2}]},
        key="s1",
    )
    assert shipped.status_code == 201, shipped.text
    body: dict[str, Any] = shipped.json()
    return body


def deliver(client: TestClient[Any], shipment_id: str, body: dict[str, Any] | None = None) -> Any:
    return client.post(f"/wms/v1/shipments/{shipment_id}/delivery", json=body or {})


def delay(
    client: TestClient[Any], shipment_id: str, reason: str, promised: str, *, key: str
) -> Any:
    body = {"reason": reason, "promised_date": promised}
    return post(client, f"/wms/v1/shipments/{shipment_id}/delays", body, key=key)


def test_a_shipment_is_delivered_once(client: TestClient[Any], settings: Settings) -> None:
    shipment = dispatch(client)
    shipment_id = shipment["shipment_id"]
    read = client.get(f"/wms/v1/shipments/{shipment_id}")
    assert read.status_code == 200, read.text
    assert read.json() == shipment | {
        "delivered_at": None,
        "promised_date": None,
        "delay_reason": None,
    }

    at = (datetime.now(UTC) + timedelta(minutes=5)).replace(microsecond=0)
    delivered = deliver(client, shipment_id, {"delivered_at": at.isoformat()})
    assert delivered.status_code == 200, delivered.text
    assert datetime.fromisoformat(delivered.json()["delivered_at"]) == at
    outbox_after_first = outbox_count(settings)

    # A second report (a carrier's retry, another time) answers the shipment unchanged.
    again = deliver(client, shipment_id)
    assert again.status_code == 200, again.text
    assert again.json() == delivered.json()
    assert outbox_count(settings) == outbox_after_first
    assert client.get(f"/wms/v1/shipments/{shipment_id}").json() == delivered.json()
    listed = client.get(f"/wms/v1/fulfillment-orders/{shipment['fulfillment_order_id']}/shipments")
    assert listed.json()["items"] == [delivered.json()]

    (event,) = events_of(settings, "shipment.delivered", 1)
    payload = event.payload(ShipmentDelivered)
    assert (event.subject, event.sequence) == (f"shipment:{shipment_id}", 2)
    assert (payload.shipment_id, payload.fulfillment_order_id, payload.order_id) == (
        shipment_id,
        shipment["fulfillment_order_id"],
        "SO-1",
    )
    assert datetime.fromisoformat(payload.delivered_at) == at


def test_delays_then_delivery_and_no_delay_after_it(
    client: TestClient[Any], settings: Settings
) -> None:
    shipment_id = dispatch(client)["shipment_id"]
    first = delay(client, shipment_id, "weather", "2027-01-10", key="d1")
    assert first.status_code == 201, first.text
    assert (first.json()["promised_date"], first.json()["delay_reason"]) == (
        "2027-01-10",
        "weather",
    )
    second = delay(client, shipment_id, "hub closed", "2027-01-12", key="d2")
    assert second.status_code == 201, second.text
    read = client.get(f"/wms/v1/shipments/{shipment_id}").json()
    assert (read["promised_date"], read["delay_reason"], read["delivered_at"]) == (
        "2027-01-12",
        "hub closed",
        None,
    )

    assert deliver(client, shipment_id).status_code == 200
    outbox_after_delivery = outbox_count(settings)
    late = delay(client, shipment_id, "lost", "2027-01-20", key="d3")
    assert_problem(late, 409, "shipment-delivered")
    assert outbox_count(settings) == outbox_after_delivery

    delays = events_of(settings, "shipment.delayed", 2)
    assert [(e.subject, e.sequence) for e in delays] == [
        (f"shipment:{shipment_id}", 3),
        (f"shipment:{shipment_id}", 4),
    ]
    payloads = [e.payload(ShipmentDelayed) for e in delays]
    assert [(p.reason, p.promised_date) for p in payloads] == [
        ("weather", "2027-01-10"),
        ("hub closed", "2027-01-12"),
    ]
    assert payloads[0].reported_at <= payloads[1].reported_at
    assert len(events_of(settings, "shipment.delivered", 1)) == 1


def test_a_delay_replayed_is_recorded_once(client: TestClient[Any], settings: Settings) -> None:
    shipment_id = dispatch(client)["shipment_id"]
    first = delay(client, shipment_id, "weather", "2027-01-10", key="d1")
    outbox_after_first = outbox_count(settings)
    again = delay(client, shipment_id, "weather", "2027-01-10", key="d1")
    assert again.status_code == 201 and again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    assert outbox_count(settings) == outbox_after_first
    assert_problem(delay(client, shipment_id, "other", "2027-01-11", key="d1"), 422)


def test_refusals_change_nothing(client: TestClient[Any], settings: Settings) -> None:
    shipment = dispatch(client)
    shipment_id = shipment["shipment_id"]
    outbox_before = outbox_count(settings)
    assert_problem(client.get("/wms/v1/shipments/SHP-nope"), 404, "shipment-not-found")
    assert_problem(deliver(client, "SHP-nope"), 404, "shipment-not-found")
    assert_problem(delay(client, "SHP-nope", "x", "2027-01-10", key="d1"), 404)
    before_dispatch = datetime.fromisoformat(shipment["shipped_at"]) - timedelta(days=1)
    early = deliver(client, shipment_id, {"delivered_at": before_dispatch.isoformat()})
    assert_problem(early, 422, "delivered-before-shipped")
    # A time without its offset is not a point in time; a reason must say something.
    naive = deliver(client, shipment_id, {"delivered_at": "2027-01-10T10:00:00"})
    assert naive.status_code == 400, naive.text
    assert delay(client, shipment_id, "", "2027-01-10", key="d2").status_code == 400
    no_key = client.post(
        f"/wms/v1/shipments/{shipment_id}/delays",
        json={"reason": "weather", "promised_date": "2027-01-10"},
    )
    assert no_key.status_code == 400
    assert outbox_count(settings) == outbox_before
    assert client.get(f"/wms/v1/shipments/{shipment_id}").json()["delivered_at"] is None
