"""``POST /wms/v1/fulfillment-orders/batch``: up to 100 fulfillment orders in one call,
each answered as the single create with its Idempotency-Key would answer it."""

from __future__ import annotations

from typing import Any

from litestar.testing import TestClient

from shared.events.catalog import FulfillmentReleased
from shared.settings import Settings
from tests.support.events import bus_events
from tests.support.problems import assert_problem
from tests.support.tokens import TestIssuer
from tests.wms.helpers import add_warehouse, events_of, outbox_count, receive, release

BATCH = "/wms/v1/fulfillment-orders/batch"


def item(key: str, order_id: str, *lines: tuple[str, int], warehouse_id: str = "WH1") -> Any:
    return {
        "key": key,
        "order_id": order_id,
        "warehouse_id": warehouse_id,
        "lines": [{"sku": sku, "quantity": quantity} for sku, quantity in lines],
    }


def send(client: TestClient[Any], *items: dict[str, Any]) -> list[dict[str, Any]]:
    response = client.post(BATCH, json={"fulfillment_orders": list(items)})
    assert response.status_code == 200, response.text
    results: list[dict[str, Any]] = response.json()["results"]
    assert [r["key"] for r in results] == [i["key"] for i in items]
    return results


def created(result: dict[str, Any]) -> str:
    assert result["refusal"] is None, result
    fo_id: str = result["fulfillment_order"]["fulfillment_order_id"]
    return fo_id


def fulfillment_orders(client: TestClient[Any], *order_ids: str) -> list[dict[str, Any]]:
    response = client.get("/wms/v1/fulfillment-orders", params=[("order_id", o) for o in order_ids])
    assert response.status_code == 200, response.text
    found: list[dict[str, Any]] = response.json()["items"]
    return found


def setup_stock(client: TestClient[Any]) -> None:
    add_warehouse(client)
    receive(client, [{"sku": "A", "quantity": 10}, {"sku": "B", "quantity": 4}], key="rcv")


def test_a_batch_creates_each_order_and_emits_each_release(
    client: TestClient[Any], settings: Settings
) -> None:
    setup_stock(client)
    results = send(
        client,
        item("fo:1", "SO-1", ("A", 2), ("B", 1)),
        item("fo:2", "SO-2", ("A", 3)),
        item("fo:3", "SO-3", ("B", 2)),
    )
    ids = [created(r) for r in results]
    assert len(set(ids)) == 3
    first = results[0]["fulfillment_order"]
    assert first["order_id"] == "SO-1" and first["status"] == "released"
    assert first["lines"] == [
        {"sku": "A", "quantity": 2, "shipped": 0, "picked": 0},
        {"sku": "B", "quantity": 1, "shipped": 0, "picked": 0},
    ]
    stored = fulfillment_orders(client, "SO-1", "SO-2", "SO-3")
    assert sorted(fo["fulfillment_order_id"] for fo in stored) == sorted(ids)
    released = events_of(settings, "fulfillment.released", 3)
    assert sorted(e.payload(FulfillmentReleased).fulfillment_order_id for e in released) == sorted(
        ids
    )
    assert [(e.subject, e.sequence) for e in released] == [(i, 1) for i in ids]


def test_a_replayed_batch_creates_nothing_and_answers_the_same_orders(
    client: TestClient[Any], settings: Settings
) -> None:
    setup_stock(client)
    batch = [item("fo:1", "SO-1", ("A", 2)), item("fo:2", "SO-2", ("B", 1))]
    first = [created(r) for r in send(client, *batch)]
    events_of(settings, "fulfillment.released", 2)
    outbox = outbox_count(settings)
    again = send(client, *batch)
    assert [created(r) for r in again] == first
    # Partly new: the known key replays, the new one is created.
    mixed = send(client, batch[1], item("fo:3", "SO-3", ("A", 1)))
    assert created(mixed[0]) == first[1]
    assert created(mixed[1]) not in first
    events_of(settings, "fulfillment.released", 3)
    assert outbox_count(settings) == outbox + 1
    assert len(fulfillment_orders(client, "SO-1", "SO-2", "SO-3")) == 3


def test_a_key_first_used_on_the_single_create_is_replayed(
    client: TestClient[Any], settings: Settings
) -> None:
    setup_stock(client)
    single = release(client, [{"sku": "A", "quantity": 2}], order_id="SO-1", key="fo:1")
    (result,) = send(client, item("fo:1", "SO-1", ("A", 2)))
    assert result["fulfillment_order"] == single
    # And the other way round: the single create replays what the batch made.
    (made,) = send(client, item("fo:2", "SO-2", ("B", 1)))
    again = client.post(
        "/wms/v1/fulfillment-orders",
        json={"order_id": "SO-2", "warehouse_id": "WH1", "lines": [{"sku": "B", "quantity": 1}]},
        headers={"Idempotency-Key": "fo:2"},
    )
    assert again.status_code == 201, again.text
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == made["fulfillment_order"]
    assert len(fulfillment_orders(client, "SO-1", "SO-2")) == 2
    assert len(events_of(settings, "fulfillment.released", 2)) == 2


def test_a_refused_item_changes_nothing_while_the_others_are_created(
    client: TestClient[Any], settings: Settings
) -> None:
    setup_stock(client)
    results = send(
        client,
        item("fo:1", "SO-1", ("A", 1)),
        item("fo:2", "SO-2", ("A", 1), warehouse_id="NOWHERE"),
        item("fo:3", "SO-3", ("A", 1), ("A", 2)),
        item("fo:4", "SO-4", ("B", 1)),
    )
    assert results[1]["fulfillment_order"] is None
    assert results[1]["refusal"]["type"] == "/problems/unknown-warehouse"
    assert results[1]["refusal"]["status"] == 422
    assert results[2]["refusal"]["type"] == "/problems/duplicate-line"
    ids = [created(results[0]), created(results[3])]
    assert sorted(
        fo["fulfillment_order_id"]
        for fo in fulfillment_orders(client, "SO-1", "SO-2", "SO-3", "SO-4")
    ) == sorted(ids)
    events_of(settings, "fulfillment.released", 2)
    assert sorted(e.subject for e in bus_events(settings) if e.type == "fulfillment.released") == (
        sorted(ids)
    )
    # A refused request stores nothing: the key may be used again, now well.
    (retried,) = send(client, item("fo:2", "SO-2", ("A", 1)))
    assert created(retried) not in ids


def test_a_key_reused_with_another_payload_refuses_that_item(client: TestClient[Any]) -> None:
    setup_stock(client)
    first = created(send(client, item("fo:1", "SO-1", ("A", 1)))[0])
    reused, fresh = send(client, item("fo:1", "SO-1", ("A", 5)), item("fo:2", "SO-2", ("A", 1)))
    assert reused["fulfillment_order"] is None
    assert reused["refusal"]["type"] == "/problems/idempotency-key-reused"
    assert reused["refusal"]["status"] == 422
    assert created(fresh) != first
    (stored,) = fulfillment_orders(client, "SO-1")
    assert stored["fulfillment_order_id"] == first
    assert stored["lines"][0]["quantity"] == 1


def test_duplicate_keys_in_a_batch_are_a_problem_and_create_nothing(
    client: TestClient[Any], settings: Settings
) -> None:
    setup_stock(client)
    outbox = outbox_count(settings)
    response = client.post(
        BATCH,
        json={
            "fulfillment_orders": [
                item("fo:1", "SO-1", ("A", 1)),
                item("fo:1", "SO-2", ("A", 1)),
            ]
        },
    )
    assert_problem(response, 422, "duplicate-idempotency-key")
    assert fulfillment_orders(client, "SO-1", "SO-2") == []
    assert outbox_count(settings) == outbox


def test_more_than_100_items_or_none_are_400(client: TestClient[Any], settings: Settings) -> None:
    setup_stock(client)
    outbox = outbox_count(settings)
    items = [item(f"fo:{n}", f"SO-{n}", ("A", 1)) for n in range(101)]
    assert_problem(client.post(BATCH, json={"fulfillment_orders": items}), 400)
    assert_problem(client.post(BATCH, json={"fulfillment_orders": []}), 400)
    unknown = {**item("fo:1", "SO-1", ("A", 1)), "priority": 1}
    assert_problem(client.post(BATCH, json={"fulfillment_orders": [unknown]}), 400)
    assert fulfillment_orders(client, "SO-0", "SO-1", "SO-100") == []
    assert outbox_count(settings) == outbox


def test_read_scope_cannot_release_a_batch(client: TestClient[Any], issuer: TestIssuer) -> None:
    token = issuer.token("wms:read", audience="wms")
    response = client.post(
        BATCH,
        json={"fulfillment_orders": [item("fo:1", "SO-1", ("A", 1))]},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert_problem(response, 403, "insufficient-scope", correlated=False)
