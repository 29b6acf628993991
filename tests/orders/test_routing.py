"""What availability decides for an order, through the order flow: the ship-to drives
the ``nearest`` warehouse, a strategic customer's ring-fence is honoured, and a cart
hold becomes the order's allocation with its units."""

from __future__ import annotations

from typing import Any

from tests.orders.helpers import (
    allocated,
    atp,
    body,
    fulfillments,
    line_of,
    new_customer,
    new_item,
    new_warehouse,
    orders_of,
    place,
    receipt,
    receive,
    settled,
    stocked_item,
    uid,
)
from tests.support.problems import assert_problem
from tests.support.stack import Stack


def admin_put(stack: Stack, path: str, payload: dict[str, Any]) -> Any:
    with stack.client("availability", "inventory:admin") as availability:
        response = availability.put(path, json=payload)
    assert response.status_code == 200, response.text
    return response.json()


def patch_customer(stack: Stack, customer_id: str, **changes: Any) -> dict[str, Any]:
    with stack.client("erp", "erp:write") as erp:
        response = erp.patch(f"/erp/v1/customers/{customer_id}", json=changes)
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()
    return found


def ship_to(ship_to_id: str, region: str) -> dict[str, Any]:
    return {
        "ship_to_id": ship_to_id,
        "name": f"Dock {ship_to_id}",
        "address": {"line1": "1 Quay St", "city": "Port", "postal_code": "1000", "country": "NL"},
        "region": region,
    }


def order_to(customer_id: str, channel: str, sku: str, quantity: int, **extra: Any) -> Any:
    data = body(customer_id, (sku, quantity))
    return {**data, "channel": channel, **extra}


def released_to(stack: Stack, response: Any) -> str:
    assert response.status_code == 201, response.text
    order = settled(stack, response.json()["order_id"], status="released")
    (fo,) = fulfillments(stack, order["order_id"])
    warehouse_id: str = fo["warehouse_id"]
    assert order["fulfillment_orders"][0]["warehouse_id"] == warehouse_id
    return warehouse_id


def test_the_ship_to_drives_the_nearest_warehouse(full_stack: Stack) -> None:
    north, south = uid("north"), uid("south")
    wh_north, wh_south = new_warehouse(full_stack), new_warehouse(full_stack)
    admin_put(full_stack, f"/availability/v1/locations/{wh_north}", {"region": north})
    admin_put(full_stack, f"/availability/v1/locations/{wh_south}", {"region": south})
    admin_put(full_stack, f"/availability/v1/regions/{north}", {"distances": {south: 900}})
    channel = uid("near")
    admin_put(
        full_stack,
        f"/availability/v1/channels/{channel}/strategy",
        {"ranking": "nearest", "split_lines": "across_locations"},
    )
    sku = new_item(full_stack)
    # The north holds more: by most stock every order would go there.
    receive(full_stack, wh_north, sku, 10)
    receive(full_stack, wh_south, sku, 6)
    customer_id = new_customer(full_stack)
    patch_customer(
        full_stack, customer_id, ship_tos=[ship_to("ST-N", north), ship_to("ST-S", south)]
    )

    to_south = place(
        full_stack, order_to(customer_id, channel, sku, 3, ship_to={"ship_to_id": "ST-S"})
    )
    assert to_south.status_code == 201, to_south.text
    assert to_south.json()["ship_to"]["region"] == south
    assert to_south.json()["ship_to"]["ship_to_id"] == "ST-S"
    assert released_to(full_stack, to_south) == wh_south
    to_north = place(
        full_stack, order_to(customer_id, channel, sku, 3, ship_to={"ship_to_id": "ST-N"})
    )
    assert released_to(full_stack, to_north) == wh_north
    address = {
        "name": "Site office",
        "address": {"line1": "9 Dune Rd", "city": "Sand", "postal_code": "9", "country": "NL"},
        "region": south,
    }
    to_address = place(full_stack, order_to(customer_id, channel, sku, 2, ship_to=address))
    assert to_address.json()["ship_to"]["region"] == south
    assert to_address.json()["ship_to"]["address"]["city"] == "Sand"
    assert released_to(full_stack, to_address) == wh_south

    unknown = place(
        full_stack, order_to(customer_id, channel, sku, 1, ship_to={"ship_to_id": "ST-X"})
    )
    assert_problem(unknown, 422, "unknown-ship-to")
    assert len(orders_of(full_stack, customer_id)) == 3
    assert allocated(full_stack, sku) == 8


def test_a_strategic_customers_ring_fence_is_honoured(full_stack: Stack, warehouse: str) -> None:
    sku = stocked_item(full_stack, warehouse, 10)
    admin_put(
        full_stack,
        f"/availability/v1/channel-rules/{uid('fence')}",
        {"sku": sku, "kind": "fence", "customer_group": "strategic", "quantity": 6},
    )
    strategic = new_customer(full_stack)
    assert patch_customer(full_stack, strategic, customer_group="strategic")["customer_group"] == (
        "strategic"
    )
    other = new_customer(full_stack)

    refused = place(full_stack, body(other, (sku, 5)))
    problem = assert_problem(refused, 409, "insufficient-stock")
    assert problem["detail"]
    assert orders_of(full_stack, other) == []
    assert allocated(full_stack, sku) == 0

    fenced = place(full_stack, body(strategic, (sku, 8)))
    assert fenced.status_code == 201, fenced.text
    assert fenced.json()["customer_group"] == "strategic"
    order = settled(full_stack, fenced.json()["order_id"], status="released")
    assert line_of(order, sku)["allocated"] == 8
    # The strategic order used its fence first: the 4 free units are left... less the 2
    # its order took beyond the fence.
    assert place(full_stack, body(other, (sku, 3))).status_code == 409
    fits = place(full_stack, body(other, (sku, 2)))
    assert fits.status_code == 201, fits.text
    assert allocated(full_stack, sku) == 10 and atp(full_stack, sku) == 0


def new_hold(stack: Stack, customer_id: str, lines: list[tuple[str, int]]) -> dict[str, Any]:
    with stack.client("availability", "inventory:write inventory:read") as availability:
        response = availability.post(
            "/availability/v1/holds",
            json={
                "channel": "b2b_portal",
                "customer_id": customer_id,
                "lines": [{"sku": sku, "quantity": q} for sku, q in lines],
                "ttl_seconds": 600,
            },
            headers={"Idempotency-Key": uid("hold")},
        )
    assert response.status_code == 201, response.text
    found: dict[str, Any] = response.json()
    return found


def hold_of(stack: Stack, hold_id: str) -> dict[str, Any]:
    with stack.client("availability", "inventory:read") as availability:
        response = availability.get(f"/availability/v1/holds/{hold_id}")
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()
    return found


def test_a_cart_hold_becomes_the_orders_allocation(full_stack: Stack, warehouse: str) -> None:
    a = stocked_item(full_stack, warehouse, 10)
    b = stocked_item(full_stack, warehouse, 5)
    customer_id = new_customer(full_stack)
    cart = new_hold(full_stack, customer_id, [(a, 3), (b, 1)])
    assert (atp(full_stack, a), atp(full_stack, b)) == (7, 4)

    placed = place(full_stack, {**body(customer_id, (a, 3), (b, 1)), "hold_id": cart["hold_id"]})
    assert placed.status_code == 201, placed.text
    assert placed.json()["hold_id"] == cart["hold_id"]
    order = settled(full_stack, placed.json()["order_id"], status="released")
    assert [(x["allocated"], x["released"]) for x in order["lines"]] == [(3, 3), (1, 1)]
    # The held units became the order's: ATP did not move at conversion.
    assert (atp(full_stack, a), atp(full_stack, b)) == (7, 4)
    assert (allocated(full_stack, a), allocated(full_stack, b)) == (3, 1)
    converted = hold_of(full_stack, cart["hold_id"])
    assert (converted["status"], converted["order_id"]) == ("converted", order["order_id"])
    (fo,) = fulfillments(full_stack, order["order_id"])
    assert sorted((x["sku"], x["quantity"]) for x in fo["lines"]) == sorted([(a, 3), (b, 1)])


def test_a_hold_of_another_customer_or_other_lines_is_refused(
    full_stack: Stack, warehouse: str
) -> None:
    sku = stocked_item(full_stack, warehouse, 10)
    owner, stranger = new_customer(full_stack), new_customer(full_stack)
    cart = new_hold(full_stack, owner, [(sku, 3)])

    theirs = place(full_stack, {**body(stranger, (sku, 3)), "hold_id": cart["hold_id"]})
    assert_problem(theirs, 422, "unknown-hold")
    other_lines = place(full_stack, {**body(owner, (sku, 2)), "hold_id": cart["hold_id"]})
    problem = assert_problem(other_lines, 422, "hold-mismatch")
    assert cart["hold_id"] in problem["detail"]

    assert orders_of(full_stack, owner) == orders_of(full_stack, stranger) == []
    assert hold_of(full_stack, cart["hold_id"])["status"] == "active"
    assert atp(full_stack, sku) == 7 and allocated(full_stack, sku) == 0
    # The hold is still the owner's to convert.
    placed = place(full_stack, {**body(owner, (sku, 3)), "hold_id": cart["hold_id"]})
    assert placed.status_code == 201, placed.text
    assert hold_of(full_stack, cart["hold_id"])["status"] == "converted"


def test_the_ring_fence_holds_when_backorders_fill(full_stack: Stack, warehouse: str) -> None:
    sku = new_item(full_stack)
    admin_put(
        full_stack,
        f"/availability/v1/channel-rules/{uid('fence')}",
        {"sku": sku, "kind": "fence", "customer_group": "strategic", "quantity": 5},
    )
    strategic, other = new_customer(full_stack), new_customer(full_stack)
    patch_customer(full_stack, strategic, customer_group="strategic")
    older = place(full_stack, body(other, (sku, 3), policy="partial"))
    newer = place(full_stack, body(strategic, (sku, 3), policy="partial"))
    assert older.json()["status"] == newer.json()["status"] == "backordered", older.text

    # 5 units arrive, all inside the fence: the older order is not strategic and may not
    # take them; the strategic one fills.
    receipt(full_stack, warehouse, sku, 5)
    settled(full_stack, newer.json()["order_id"], status="released")
    waiting = settled(full_stack, older.json()["order_id"])
    assert (waiting["status"], line_of(waiting, sku)["backordered"]) == ("backordered", 3)
    assert allocated(full_stack, sku) == 3

    # 3 more: the fence keeps its last 2 units, the other 3 are anyone's.
    receipt(full_stack, warehouse, sku, 3)
    settled(full_stack, older.json()["order_id"], status="released")
    assert allocated(full_stack, sku) == 6 and atp(full_stack, sku) == 2
