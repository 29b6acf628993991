"""Returns authorised on the order (RMAs, decision 0033), over the real services: an
RMA for shipped units, its refusals, two concurrent RMAs on SQLite and PostgreSQL,
receipt and dispositions at the WMS moving it to received, inspected and closed,
rejection, expiry by the sweeper, the WMS down when it is authorised, and the WMS's
return facts delivered three times and shuffled."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest

from process_apis.order_to_ship.returns.settings import ReturnsSettings
from process_apis.order_to_ship.returns.states import (
    STATUSES,
    TERMINAL,
    TRANSITIONS,
    IllegalRmaTransition,
    allowed,
    check_transition,
    counted,
)
from shared.events.catalog import (
    STREAM_ORDERS,
    STREAM_WMS,
    Disposition,
    DispositionedLine,
    Line,
    ReturnDispositioned,
    ReturnReceived,
)
from shared.events.envelope import Event, new_event
from tests.orders.helpers import (
    body,
    events_of,
    fulfillments,
    line_of,
    new_customer,
    order_of,
    place,
    redelivered,
    settled,
    ship,
    stocked_item,
    uid,
    wait_order,
)
from tests.support.polling import wait_until
from tests.support.ports import free_port
from tests.support.problems import assert_problem
from tests.support.stack import Stack, ThreadServer

# The WMS back after an outage: a breaker cool-down (5 s) plus the notifier's longest
# back-off (10 s), with room to spare.
RECOVERY = 60.0
WRITE = "orders:write orders:read"


# -- what the tests do ---------------------------------------------------------------


def shipped_order(
    stack: Stack, warehouse: str, ordered: int, shipped: int, *, extra_sku: bool = False
) -> tuple[str, str, str, str | None]:
    """A real order of ``ordered`` units, ``shipped`` of them shipped by the WMS:
    (order_id, sku, customer_id, a second sku on the order that shipped nothing)."""
    customer = new_customer(stack)
    sku = stocked_item(stack, warehouse, ordered)
    lines = [(sku, ordered)]
    other = None
    if extra_sku:
        other = stocked_item(stack, warehouse, 2)
        lines.append((other, 2))
    placed = place(stack, body(customer, *lines))
    assert placed.status_code == 201, placed.text
    order_id = str(placed.json()["order_id"])
    settled(stack, order_id)
    (fo,) = fulfillments(stack, order_id)
    ship(stack, fo, [(sku, shipped)])
    wait_order(
        stack, order_id, lambda o: line_of(o, sku)["shipped"] == shipped, f"{shipped} shipped"
    )
    return order_id, sku, customer, other


def authorize(
    stack: Stack,
    order_id: str,
    lines: Sequence[tuple[str, int]],
    *,
    key: str | None = None,
    customer_id: str | None = None,
    reason: str | None = None,
) -> httpx.Response:
    payload: dict[str, Any] = {"lines": [{"sku": s, "quantity": q} for s, q in lines]}
    if reason is not None:
        payload["reason"] = reason
    with stack.client("order_to_ship", WRITE, customer_id=customer_id) as orders:
        return orders.post(
            f"/orders/v1/orders/{order_id}/returns",
            json=payload,
            headers={"Idempotency-Key": key or uid("rma")},
        )


def authorized(stack: Stack, order_id: str, lines: Sequence[tuple[str, int]]) -> dict[str, Any]:
    response = authorize(stack, order_id, lines)
    assert response.status_code == 201, response.text
    found: dict[str, Any] = response.json()
    return found


def rma_of(stack: Stack, rma_id: str) -> dict[str, Any]:
    with stack.client("order_to_ship", "orders:read") as orders:
        response = orders.get(f"/orders/v1/returns/{rma_id}")
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()
    return found


def wait_rma(stack: Stack, rma_id: str, check: Any, what: str, timeout: float = 30.0) -> Any:
    seen: dict[str, Any] = {}

    def done() -> bool:
        seen.clear()
        seen.update(rma_of(stack, rma_id))
        return bool(check(seen))

    wait_until(done, timeout=timeout, what=f"RMA {rma_id} {what}: {seen}")
    return seen


def rma_line(rma: dict[str, Any], sku: str) -> dict[str, Any]:
    (line,) = [line for line in rma["lines"] if line["sku"] == sku]
    found: dict[str, Any] = line
    return found


def wms_rma(stack: Stack, rma_id: str) -> dict[str, Any] | None:
    with stack.client("wms", "wms:read") as wms:
        response = wms.get(f"/wms/v1/return-authorizations/{rma_id}")
    if response.status_code == 404:
        return None
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()
    return found


def registered(stack: Stack, rma_id: str, status: str = "authorized") -> dict[str, Any]:
    """The RMA once the WMS holds it in ``status`` (and the order service knows it)."""
    wait_rma(stack, rma_id, lambda r: r["wms_synced"], "registered at the WMS", RECOVERY)
    found = wms_rma(stack, rma_id)
    assert found is not None
    assert found["status"] == status, found
    return found


def wms_receive(
    stack: Stack, warehouse: str, rma_id: str, lines: Sequence[tuple[str, int]]
) -> httpx.Response:
    with stack.client("wms", "wms:write") as wms:
        return wms.post(
            "/wms/v1/returns",
            json={
                "warehouse_id": warehouse,
                "rma_id": rma_id,
                "lines": [{"sku": s, "quantity": q} for s, q in lines],
            },
            headers={"Idempotency-Key": uid("ret")},
        )


def received(stack: Stack, warehouse: str, rma_id: str, lines: Sequence[tuple[str, int]]) -> str:
    response = wms_receive(stack, warehouse, rma_id, lines)
    assert response.status_code == 201, response.text
    return str(response.json()["return_id"])


def wms_disposition(
    stack: Stack, return_id: str, lines: Sequence[tuple[str, int, str]], *, release: bool = False
) -> None:
    path = f"/wms/v1/returns/{return_id}/{'release' if release else 'disposition'}"
    with stack.client("wms", "wms:write") as wms:
        response = wms.post(
            path,
            json={"lines": [{"sku": s, "quantity": q, "disposition": d} for s, q, d in lines]},
            headers={"Idempotency-Key": uid("dsp")},
        )
    assert response.status_code in (200, 201), response.text


def statuses(stack: Stack, rma_id: str) -> list[str]:
    """What the order service announced of the RMA, in sequence order."""
    events = sorted(events_of(stack, STREAM_ORDERS, f"rma:{rma_id}"), key=lambda e: e.sequence)
    assert [e.sequence for e in events] == list(range(1, len(events) + 1)), events
    return [
        "authorized" if e.type == "return.authorized" else msgspec.json.decode(e.data)["status"]
        for e in events
    ]


# -- the transition table ---------------------------------------------------------------


def test_the_transition_table_holds_every_status_and_refuses_the_rest() -> None:
    assert set(TRANSITIONS) == set(STATUSES)
    assert all(not TRANSITIONS[status] for status in TERMINAL)
    for current in STATUSES:
        for target in STATUSES:
            if current == target or allowed(current, target):
                check_transition("RMA-1", current, target)
            else:
                with pytest.raises(IllegalRmaTransition) as refused:
                    check_transition("RMA-1", current, target)
                assert refused.value.status == 409
    # What the order line counts: authorised while open, what arrived once ended.
    assert [counted(status, 5, 2) for status in STATUSES] == [5, 5, 5, 2, 2, 2]
    assert counted("rejected", 5, 0) == counted("expired", 5, 0) == 0


# -- authorising ---------------------------------------------------------------------


def test_an_rma_for_shipped_units_is_on_the_order_and_at_the_wms(
    full_stack: Stack, warehouse: str
) -> None:
    stack = full_stack
    order_id, sku, customer, _ = shipped_order(stack, warehouse, 8, 5)
    key = uid("rma")
    before = time.time()
    first = authorize(stack, order_id, [(sku, 2), (sku, 1)], key=key, reason="wrong size")
    assert first.status_code == 201, first.text
    rma = first.json()
    assert rma["rma_id"].startswith("RMA-")
    assert rma["order_id"] == order_id
    assert rma["customer_id"] == customer
    assert rma["status"] == "authorized"
    assert rma["reason"] == "wrong size"
    assert rma["lines"] == [
        {
            "sku": sku,
            "authorized": 3,
            "received": 0,
            "restocked": 0,
            "damaged": 0,
            "scrapped": 0,
            "returned_to_vendor": 0,
        }
    ]
    expires = datetime.fromisoformat(rma["expires_at"]).timestamp()
    assert before + 30 * 86400 - 5 <= expires <= time.time() + 30 * 86400 + 5

    # The same key answers the same RMA; nothing is authorised twice.
    again = authorize(stack, order_id, [(sku, 2), (sku, 1)], key=key, reason="wrong size")
    assert again.status_code == 201
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json()["rma_id"] == rma["rma_id"]

    order = order_of(stack, order_id)
    assert line_of(order, sku)["returned"] == 3
    assert line_of(order, sku)["shipped"] == 5
    assert order["status"] == "partially_shipped"  # an RMA does not move the order

    with stack.client("order_to_ship", "orders:read") as orders:
        listed = orders.get(f"/orders/v1/orders/{order_id}/returns")
    assert listed.status_code == 200, listed.text
    assert [r["rma_id"] for r in listed.json()["items"]] == [rma["rma_id"]]

    at_wms = registered(stack, rma["rma_id"])
    assert at_wms["order_id"] == order_id
    assert at_wms["lines"] == [{"sku": sku, "authorized": 3, "received": 0}]
    assert statuses(stack, rma["rma_id"]) == ["authorized"]


def test_an_rma_above_what_shipped_less_what_returned_is_refused_and_writes_nothing(
    full_stack: Stack, warehouse: str
) -> None:
    stack = full_stack
    order_id, sku, customer, unshipped = shipped_order(stack, warehouse, 8, 5, extra_sku=True)
    assert unshipped is not None
    authorized(stack, order_id, [(sku, 3)])

    over = authorize(stack, order_id, [(sku, 3)])
    problem = assert_problem(over, 409, "return-exceeds-shipped")
    assert (problem["sku"], problem["shipped"], problem["returned"], problem["requested"]) == (
        sku,
        5,
        3,
        3,
    )
    not_shipped = authorize(stack, order_id, [(sku, 1), (unshipped, 1)])
    problem = assert_problem(not_shipped, 409, "return-exceeds-shipped")
    assert (problem["sku"], problem["shipped"], problem["requested"]) == (unshipped, 0, 1)
    foreign = authorize(stack, order_id, [(sku, 1), ("SKU-NOT-ON-ORDER", 1)])
    assert assert_problem(foreign, 422, "not-on-order")["sku"] == "SKU-NOT-ON-ORDER"

    # Another customer's client: the 404 of an unknown order; its own customer's: 201.
    other = new_customer(stack)
    theirs = authorize(stack, order_id, [(sku, 1)], customer_id=other)
    unknown = authorize(stack, uid("ORD"), [(sku, 1)], customer_id=other)
    assert_problem(theirs, 404, "order-not-found")
    assert_problem(unknown, 404, "order-not-found")
    with stack.client("order_to_ship", "orders:read", customer_id=other) as orders:
        assert orders.get(f"/orders/v1/orders/{order_id}/returns").status_code == 404

    # A refused request keeps its key free: used again for what fits, it authorises.
    key = uid("rma")
    assert authorize(stack, order_id, [(sku, 3)], key=key).status_code == 409
    own = authorize(stack, order_id, [(sku, 2)], key=key, customer_id=customer)
    assert own.status_code == 201, own.text
    assert "Idempotent-Replayed" not in own.headers

    order = order_of(stack, order_id)
    assert line_of(order, sku)["returned"] == 5
    assert line_of(order, unshipped)["returned"] == 0
    with stack.client("order_to_ship", "orders:read", customer_id=customer) as orders:
        listed = orders.get(f"/orders/v1/orders/{order_id}/returns").json()["items"]
        assert len(listed) == 2
        assert orders.get(f"/orders/v1/returns/{listed[0]['rma_id']}").status_code == 200
        first = orders.get(f"/orders/v1/orders/{order_id}/returns", params={"limit": 1}).json()
        rest = orders.get(
            f"/orders/v1/orders/{order_id}/returns",
            params={"limit": 1, "cursor": first["next_cursor"]},
        ).json()
        assert [r["rma_id"] for r in first["items"] + rest["items"]] == [
            r["rma_id"] for r in listed
        ]
        assert rest["next_cursor"] is None
    with stack.client("order_to_ship", "orders:read", customer_id=other) as orders:
        assert_problem(
            orders.get(f"/orders/v1/returns/{listed[0]['rma_id']}"), 404, "rma-not-found"
        )
    assert authorize(stack, order_id, [(sku, 1)]).status_code == 409


# -- concurrency, on SQLite and PostgreSQL -----------------------------------------


def seed_shipped(database_url: str, customer_id: str, sku: str, shipped: int) -> str:
    """An order whose ``shipped`` units left the warehouse, written straight into the
    orders database (the same repository calls the service makes)."""
    from process_apis.order_to_ship.db import metadata
    from process_apis.order_to_ship.orders import repository as repo
    from shared.db import Database

    order_id = uid("ORD")

    async def run() -> None:
        db = Database(database_url, metadata)
        try:
            await db.create_schema()
            async with db.transaction() as tx:
                await repo.insert_pending(
                    tx.conn,
                    repo.NewOrder(
                        order_id=order_id,
                        customer_id=customer_id,
                        channel="b2b_portal",
                        policy="reject",
                        currency="USD",
                        lines=[(sku, shipped, 1250)],
                        client_id="seed",
                        idempotency_key=order_id,
                    ),
                )
                working = await repo.lock(tx, order_id)
                assert working is not None
                working.line(sku).plan(shipped, 0)
                working.line(sku).release(shipped)
                await repo.save(tx.conn, working, "released", "seeded")
                working = await repo.lock(tx, order_id)
                assert working is not None
                working.line(sku).ship(shipped)
                await repo.save(tx.conn, working, "shipped", "seeded")
        finally:
            await db.dispose()

    asyncio.run(run())
    return order_id


@contextmanager
def lone_orders_service(
    stack: Stack, data_dir: Path, database_url: str
) -> Iterator[tuple[str, str]]:
    """An order-to-ship service of its own (its data dir, event log and database),
    wired to the stack's partners: (its url, a token for it)."""
    settings = stack.settings(
        "order_to_ship",
        data_dir=data_dir,
        database_url=database_url,
        bus_url=f"sqlite:///{data_dir / 'events.db'}",
    )
    port = free_port()
    server = ThreadServer(stack.app("order_to_ship", settings), port)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}", stack.token("order_to_ship", WRITE)
    finally:
        server.stop()


async def rush(url: str, token: str, order_id: str, sku: str, each: int, n: int) -> list[Any]:
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=60.0) as http:
        return list(
            await asyncio.gather(
                *(
                    http.post(
                        f"/orders/v1/orders/{order_id}/returns",
                        json={"lines": [{"sku": sku, "quantity": each}]},
                        headers={"Idempotency-Key": uid("rush")},
                    )
                    for _ in range(n)
                )
            )
        )


def test_concurrent_rmas_never_together_exceed_what_shipped(
    stack: Stack, tmp_path: Path, database_url: str
) -> None:
    customer, sku = uid("CUST"), uid("SKU")
    data_dir = tmp_path / "lone"
    data_dir.mkdir()
    with lone_orders_service(stack, data_dir, database_url) as (url, token):
        seed = seed_shipped(database_url, customer, sku, 5)
        pair = asyncio.run(rush(url, token, seed, sku, 3, 2))
        assert sorted(r.status_code for r in pair) == [201, 409], [r.text for r in pair]
        (refused,) = [r for r in pair if r.status_code == 409]
        assert refused.json()["type"] == "/problems/return-exceeds-shipped"

        other = seed_shipped(database_url, customer, sku, 7)
        crowd = asyncio.run(rush(url, token, other, sku, 2, 12))
        assert sorted(r.status_code for r in crowd) == [201] * 3 + [409] * 9
        with httpx.Client(
            base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=30
        ) as http:
            for order_id, expected in ((seed, 3), (other, 6)):
                order = http.get(f"/orders/v1/orders/{order_id}").json()
                assert line_of(order, sku)["returned"] == expected
                listed = http.get(f"/orders/v1/orders/{order_id}/returns").json()["items"]
                assert sum(rma_line(r, sku)["authorized"] for r in listed) == expected


# -- receipt, inspection, closing ----------------------------------------------------


def test_receipt_and_dispositions_move_the_rma_to_received_inspected_and_closed(
    full_stack: Stack, warehouse: str
) -> None:
    stack = full_stack
    order_id, sku, _, _ = shipped_order(stack, warehouse, 5, 5)
    rma_id = authorized(stack, order_id, [(sku, 3)])["rma_id"]
    registered(stack, rma_id)

    first = received(stack, warehouse, rma_id, [(sku, 2)])
    rma = wait_rma(stack, rma_id, lambda r: r["status"] == "received", "received")
    assert rma_line(rma, sku)["received"] == 2
    # One unit restocked, one kept in quality control: not inspected yet.
    wms_disposition(stack, first, [(sku, 1, "restock"), (sku, 1, "quality_control")])
    rma = wait_rma(stack, rma_id, lambda r: rma_line(r, sku)["restocked"] == 1, "restocked")
    assert rma["status"] == "received"
    # The held unit released as damaged: every received unit is dispositioned.
    wms_disposition(stack, first, [(sku, 1, "damaged")], release=True)
    rma = wait_rma(stack, rma_id, lambda r: r["status"] == "inspected", "inspected")
    assert rma_line(rma, sku)["damaged"] == 1
    assert line_of(order_of(stack, order_id), sku)["returned"] == 3  # one still due

    # The last unit arrives and is scrapped: all received and inspected, closed.
    last = received(stack, warehouse, rma_id, [(sku, 1)])
    wait_rma(stack, rma_id, lambda r: r["status"] == "received", "received again")
    assert_problem(wms_receive(stack, warehouse, rma_id, [(sku, 1)]), 409, "rma-exhausted")
    wms_disposition(stack, last, [(sku, 1, "scrap")])
    rma = wait_rma(stack, rma_id, lambda r: r["status"] == "closed", "closed")
    assert rma_line(rma, sku) == {
        "sku": sku,
        "authorized": 3,
        "received": 3,
        "restocked": 1,
        "damaged": 1,
        "scrapped": 1,
        "returned_to_vendor": 0,
    }
    assert line_of(order_of(stack, order_id), sku)["returned"] == 3
    assert statuses(stack, rma_id) == [
        "authorized",
        "received",
        "inspected",
        "received",
        "inspected",
        "closed",
    ]
    # Two more may come back: 5 shipped, 3 returned.
    assert_problem(authorize(stack, order_id, [(sku, 3)]), 409, "return-exceeds-shipped")
    assert authorize(stack, order_id, [(sku, 2)]).status_code == 201


def test_a_rejected_rma_frees_its_units_and_is_cancelled_at_the_wms(
    full_stack: Stack, warehouse: str
) -> None:
    stack = full_stack
    order_id, sku, customer, _ = shipped_order(stack, warehouse, 4, 4)
    rma_id = authorized(stack, order_id, [(sku, 4)])["rma_id"]
    registered(stack, rma_id)

    with stack.client("order_to_ship", WRITE, customer_id=customer) as partner:
        refused = partner.post(f"/orders/v1/returns/{rma_id}/reject")
        assert_problem(refused, 403, "insufficient-scope", correlated=False)
    with stack.client("order_to_ship", "orders:admin orders:read") as staff:
        rejected = staff.post(f"/orders/v1/returns/{rma_id}/reject", json={"reason": "too late"})
        assert rejected.status_code == 200, rejected.text
        assert rejected.json()["status"] == "rejected"
        assert rejected.json()["rejection_reason"] == "too late"
        again = staff.post(f"/orders/v1/returns/{rma_id}/reject")
        assert again.status_code == 200
        assert again.json()["status"] == "rejected"
        assert_problem(staff.post(f"/orders/v1/returns/{uid('RMA')}/reject"), 404, "rma-not-found")
    assert line_of(order_of(stack, order_id), sku)["returned"] == 0
    registered(stack, rma_id, "cancelled")
    assert_problem(wms_receive(stack, warehouse, rma_id, [(sku, 1)]), 409, "rma-closed")
    assert statuses(stack, rma_id) == ["authorized", "rejected"]

    # Its units may be authorised again; one that received goods cannot be rejected.
    second = authorized(stack, order_id, [(sku, 4)])["rma_id"]
    registered(stack, second)
    received(stack, warehouse, second, [(sku, 1)])
    wait_rma(stack, second, lambda r: r["status"] == "received", "received")
    with stack.client("order_to_ship", "orders:admin") as staff:
        refused = staff.post(f"/orders/v1/returns/{second}/reject")
    problem = assert_problem(refused, 409, "illegal-transition")
    assert (problem["rma_status"], problem["requested_status"]) == ("received", "rejected")


# -- expiry ----------------------------------------------------------------------------


@contextmanager
def orders_with(stack: Stack, returns_settings: ReturnsSettings) -> Iterator[None]:
    """The stack's order service restarted with these returns settings (its port, its
    data), started again as it was afterwards."""
    stack.servers.pop("order_to_ship").stop()
    server = ThreadServer(
        stack.app("order_to_ship", returns_settings=returns_settings), stack.ports["order_to_ship"]
    )
    server.start()
    try:
        yield
    finally:
        server.stop()
        stack.start_service("order_to_ship")


def test_the_sweeper_expires_unreceived_rmas_and_closes_inspected_ones(
    full_stack: Stack, warehouse: str
) -> None:
    stack = full_stack
    order_id, sku, _, _ = shipped_order(stack, warehouse, 6, 6)
    window = ReturnsSettings(window=timedelta(seconds=8), sweep_every=0.3)
    with orders_with(stack, window):
        idle = authorized(stack, order_id, [(sku, 2)])
        used = authorized(stack, order_id, [(sku, 3)])
        registered(stack, used["rma_id"])
        return_id = received(stack, warehouse, used["rma_id"], [(sku, 1)])
        wms_disposition(stack, return_id, [(sku, 1, "restock")])
        wait_rma(stack, used["rma_id"], lambda r: r["status"] == "inspected", "inspected")
        assert line_of(order_of(stack, order_id), sku)["returned"] == 5

        expired = wait_rma(stack, idle["rma_id"], lambda r: r["status"] == "expired", "expired")
        assert datetime.fromisoformat(expired["expires_at"]) <= datetime.now(UTC)
        closed = wait_rma(stack, used["rma_id"], lambda r: r["status"] == "closed", "closed")
        assert rma_line(closed, sku)["received"] == 1
        # Expired: nothing counts; closed: what arrived.
        assert line_of(order_of(stack, order_id), sku)["returned"] == 1
        registered(stack, idle["rma_id"], "cancelled")
        assert statuses(stack, idle["rma_id"]) == ["authorized", "expired"]
        assert statuses(stack, used["rma_id"]) == ["authorized", "received", "inspected", "closed"]
    assert authorize(stack, order_id, [(sku, 5)]).status_code == 201


# -- the WMS down ----------------------------------------------------------------------


def test_an_rma_authorised_while_the_wms_is_down_is_registered_once_it_is_back(
    full_stack: Stack, warehouse: str
) -> None:
    stack = full_stack
    order_id, sku, _, _ = shipped_order(stack, warehouse, 3, 3)
    with stack.down("wms"):
        started = time.monotonic()
        rma = authorized(stack, order_id, [(sku, 2)])
        assert time.monotonic() - started < 5.0
        time.sleep(1.0)
        assert rma_of(stack, rma["rma_id"])["wms_synced"] is False
    at_wms = registered(stack, rma["rma_id"])
    assert at_wms["lines"] == [{"sku": sku, "authorized": 2, "received": 0}]
    # Now the dock receives against it.
    received(stack, warehouse, rma["rma_id"], [(sku, 2)])
    wait_rma(stack, rma["rma_id"], lambda r: r["status"] == "received", "received")


# -- the same facts again and again ------------------------------------------------------


def wms_fact(type_: str, payload: msgspec.Struct) -> Event:
    return new_event(
        source="tally.wms",
        type_=type_,
        subject="warehouse:WH-test",
        sequence=0,
        payload=payload,
    )


DECISIONS: tuple[tuple[int, Disposition, bool], ...] = ((2, "restock", False), (1, "scrap", True))


def test_return_facts_delivered_three_times_and_shuffled_apply_once(
    full_stack: Stack, warehouse: str
) -> None:
    stack = full_stack
    order_id, sku, _, _ = shipped_order(stack, warehouse, 4, 4)
    rma_id = authorized(stack, order_id, [(sku, 4)])["rma_id"]
    return_id = uid("RET")
    receipt = wms_fact(
        "return.received",
        ReturnReceived(
            return_id=return_id,
            order_id=order_id,
            warehouse_id="WH-test",
            lines=[Line(sku, 3)],
            rma_id=rma_id,
        ),
    )
    dispositions = [
        wms_fact(
            "return.dispositioned",
            ReturnDispositioned(
                return_id=return_id,
                order_id=order_id,
                warehouse_id="WH-test",
                lines=[DispositionedLine(sku, quantity, disposition)],
                rma_id=rma_id,
                disposition_id=uid("DSP"),
                released=released,
            ),
        )
        for quantity, disposition, released in DECISIONS
    ]
    facts = [receipt, *dispositions]
    # Each fact three times: the same event twice (a redelivery) and once republished
    # under a new id; dispositions first, so they wait for their receipt.
    deliveries = [event for fact in facts for event in (fact, fact, redelivered(fact))]
    random.Random(17).shuffle(deliveries)
    deliveries.sort(key=lambda e: e.type != "return.dispositioned")
    stack.publish(STREAM_WMS, deliveries)

    rma = wait_rma(stack, rma_id, lambda r: r["status"] == "inspected", "inspected")
    time.sleep(1.5)  # the later copies have had their chance
    rma = rma_of(stack, rma_id)
    assert rma["status"] == "inspected"
    assert rma_line(rma, sku) == {
        "sku": sku,
        "authorized": 4,
        "received": 3,
        "restocked": 2,
        "damaged": 0,
        "scrapped": 1,
        "returned_to_vendor": 0,
    }
    assert line_of(order_of(stack, order_id), sku)["returned"] == 4
    assert statuses(stack, rma_id) == ["authorized", "received", "inspected"]
