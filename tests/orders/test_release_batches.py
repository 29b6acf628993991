"""The releaser sends its claimed releases to the WMS in batch calls (``POST
/wms/v1/fulfillment-orders/batch``), each under its own ``fo:{release_id}`` key: fewer
calls than releases, and still one fulfillment order per release, answers lost or not."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from tests.orders.helpers import (
    allocated,
    body,
    calls_answered,
    new_customer,
    place,
    stocked_item,
)
from tests.orders.test_outages import LossyProxy, released_once, wait_released
from tests.support.stack import Stack, ThreadServer

CREATE_ROUTES = ("/wms/v1/fulfillment-orders", "/wms/v1/fulfillment-orders/batch")


def create_calls(stack: Stack) -> dict[str, float]:
    """The WMS's fulfillment-order creates (in this test only order_to_ship's)."""
    return calls_answered(stack, "wms", "POST", CREATE_ROUTES)


def test_orders_placed_together_are_released_in_fewer_calls(
    full_stack: Stack, warehouse: str
) -> None:
    customer_id = new_customer(full_stack)
    sku = stocked_item(full_stack, warehouse, 100)
    quantities = [1 + n % 3 for n in range(20)]
    with full_stack.down("wms"):
        # The WMS away: the releases queue up, to go out together when it returns.
        with ThreadPoolExecutor(4) as pool:
            answers = list(
                pool.map(lambda q: place(full_stack, body(customer_id, (sku, q))), quantities)
            )
        assert [a.status_code for a in answers] == [201] * 20, [a.text for a in answers]
        placed = [a.json() for a in answers]
    before = create_calls(full_stack)
    for order in placed:
        released_once(full_stack, wait_released(full_stack, order["order_id"]), warehouse)
    after = create_calls(full_stack)
    batch, single = CREATE_ROUTES[1], CREATE_ROUTES[0]
    assert after[single] == before[single]
    assert 1 <= after[batch] - before[batch] < len(placed)
    assert allocated(full_stack, sku) == sum(quantities)


class LossyBatchProxy(LossyProxy):
    """The answers to the first ``lose`` batch creations are lost."""

    CREATE = b"POST /wms/v1/fulfillment-orders/batch HTTP/1.1"


def test_a_lost_answer_to_a_batch_still_releases_each_once(
    full_stack: Stack, warehouse: str
) -> None:
    """The WMS creates the batch's fulfillment orders but its answer never arrives: the
    releaser sends them again under the same keys and the WMS answers those it made."""
    customer_id = new_customer(full_stack)
    sku = stocked_item(full_stack, warehouse, 20)
    with (
        full_stack.down("wms"),
        ThreadServer(full_stack.app("wms")) as wms,
        LossyBatchProxy(full_stack.ports["wms"], wms.port, lose=3) as proxy,
    ):
        placed = []
        for quantity in (1, 2, 3):
            response = place(full_stack, body(customer_id, (sku, quantity)))
            assert response.status_code == 201, response.text
            placed.append(response.json())
        for order in placed:
            released_once(full_stack, wait_released(full_stack, order["order_id"]), warehouse)
        assert proxy.lost == 3
    assert allocated(full_stack, sku) == 6
