"""Order intake through outages, with the services really stopped (``Stack.down``):
the WMS down or frozen never slows intake and every release goes out exactly once when
it returns; availability down answers a 202 that names the order; the ERP down is a
503 with Retry-After that writes nothing, and does not stop what follows acceptance."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Self

import httpx

from tests.orders.helpers import (
    allocated,
    body,
    fulfillment_orders,
    new_customer,
    new_item,
    order_of,
    orders_of,
    place,
    ship,
    stocked_item,
    uid,
)
from tests.support.polling import wait_until
from tests.support.problems import assert_problem
from tests.support.stack import Stack, ThreadServer

# Recovery is seen up to a breaker cool-down (5 s) plus the releaser's or the sync's
# longest back-off (10 s) after a service returns.
RECOVERY = 60.0
# "Quickly": far below the 10 s a call to a dead or frozen WMS may take.
QUICK = 5.0
CLOSED, OPEN = 0.0, 2.0


# -- what the tests look at ----------------------------------------------------


def timed_place(stack: Stack, order: dict[str, Any], key: str | None = None) -> tuple[Any, float]:
    started = time.monotonic()
    response = place(stack, order, key)
    return response, time.monotonic() - started


def circuit_state(stack: Stack, downstream: str) -> float | None:
    """``tally_circuit_state{downstream=...}`` in order_to_ship's /metrics. The stack's
    services share one process, so this is the process's gauge (only order_to_ship
    calls the WMS in these tests)."""
    response = httpx.get(f"{stack.urls['order_to_ship']}/metrics", timeout=10)
    assert response.status_code == 200, response.text
    prefix = f'tally_circuit_state{{downstream="{downstream}"}} '
    for line in response.text.splitlines():
        if line.startswith(prefix):
            return float(line.removeprefix(prefix))
    return None


def wait_circuit(stack: Stack, downstream: str, state: float) -> None:
    wait_until(
        lambda: circuit_state(stack, downstream) == state,
        timeout=RECOVERY,
        what=f"the {downstream} circuit in state {state}",
    )


def wait_for(stack: Stack, order_id: str, check: Callable[[dict[str, Any]], bool]) -> Any:
    seen: dict[str, Any] = {}

    def done() -> bool:
        seen.clear()
        seen.update(order_of(stack, order_id))
        return check(seen)

    wait_until(done, timeout=RECOVERY, what=f"order {order_id}: {seen}")
    return seen


def wait_released(stack: Stack, order_id: str) -> dict[str, Any]:
    found: dict[str, Any] = wait_for(
        stack, order_id, lambda o: o["status"] == "released" and o["releases_pending"] == 0
    )
    return found


def released_once(stack: Stack, order: dict[str, Any], warehouse: str) -> None:
    """The WMS holds exactly one fulfillment order for the order, for what it allocated."""
    (fo,) = fulfillment_orders(stack, order["order_id"])
    assert fo["warehouse_id"] == warehouse
    lines: list[dict[str, Any]] = fo["lines"]  # type: ignore[assignment]
    assert [(line["sku"], line["quantity"]) for line in lines] == [
        (line["sku"], line["allocated"]) for line in order["lines"]
    ]
    assert [line["released"] for line in order["lines"]] == [
        line["allocated"] for line in order["lines"]
    ]


def sales_order(stack: Stack, order_id: str) -> dict[str, Any] | None:
    with stack.client("erp", "erp:read") as erp:
        response = erp.get(f"/erp/v1/sales-orders/{order_id}")
    if response.status_code == 404:
        return None
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()
    return found


ERP_STATUS = {"cancelled": "cancelled", "rejected": "cancelled", "completed": "closed"}


def wait_synced(stack: Stack, order_id: str) -> dict[str, Any]:
    """The ERP's sales order once it shows what the order now holds for the books: its
    status, and per line the quantity and the cancelled units (releases and shipments
    change no sales order, so they are not sent)."""

    def synced() -> dict[str, Any] | None:
        order = order_of(stack, order_id)
        found = sales_order(stack, order_id)
        if found is None or found["version"] > order["version"]:
            return None
        books = [(line["sku"], line["quantity"], line["cancelled"]) for line in order["lines"]]
        held = [(line["sku"], line["quantity"], line["cancelled"]) for line in found["lines"]]
        status = ERP_STATUS.get(order["status"], "open")
        return found if held == books and found["status"] == status else None

    found: dict[str, Any] = wait_until(
        synced, timeout=RECOVERY, what=f"the ERP's sales order {order_id}"
    )
    return found


def answered_201(stack: Stack, order: dict[str, Any], key: str, order_id: str) -> Any:
    """Retries with the key until the 201: each answer names the same order meanwhile."""

    def final() -> Any:
        retry = place(stack, order, key)
        assert retry.status_code in (201, 202), retry.text
        assert retry.json()["order_id"] == order_id
        return retry if retry.status_code == 201 else None

    done = wait_until(final, timeout=RECOVERY, interval=0.5, what=f"{order_id} allocated")
    return done.json()


class TcpFake:
    """A listener on ``port`` whose accepted connections ``handle`` serves on their own
    threads; on exit every connection is closed (the caller sees the peer go away)."""

    def __init__(self, port: int) -> None:
        self.listener = socket.create_server(("127.0.0.1", port))  # SO_REUSEADDR on POSIX
        self.listener.settimeout(0.1)
        self.stopping = threading.Event()
        self.lock = threading.Lock()
        self.sockets: list[socket.socket] = []
        self.threads = [threading.Thread(target=self._accept, daemon=True)]

    def handle(self, connection: socket.socket) -> None:
        raise NotImplementedError

    def spawn(self, target: Callable[..., None], *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        with self.lock:
            self.threads.append(thread)
        thread.start()

    def keep(self, sock: socket.socket) -> socket.socket:
        sock.settimeout(0.1)
        with self.lock:
            self.sockets.append(sock)
        return sock

    def chunks(self, sock: socket.socket) -> Iterator[bytes]:
        """What arrives on ``sock`` until its peer closes it or the fake stops."""
        while not self.stopping.is_set():
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            if not chunk:
                return
            yield chunk

    def _accept(self) -> None:
        while not self.stopping.is_set():
            try:
                connection, _ = self.listener.accept()
            except TimeoutError:
                continue
            self.spawn(self.handle, self.keep(connection))

    def __enter__(self) -> Self:
        self.threads[0].start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stopping.set()
        for thread in list(self.threads):
            thread.join(5)
        self.listener.close()
        for sock in self.sockets:
            sock.close()


class FrozenServer(TcpFake):
    """Accepts connections and reads what is sent, and never answers (a frozen service)."""

    def __init__(self, port: int) -> None:
        super().__init__(port)
        self.data = bytearray()

    def received(self) -> bytes:
        with self.lock:
            return bytes(self.data)

    def handle(self, connection: socket.socket) -> None:
        for chunk in self.chunks(connection):
            with self.lock:
                self.data += chunk


class LossyProxy(TcpFake):
    """Forwards to ``upstream``, but the answers to the first ``lose`` fulfillment-order
    creations are lost: the WMS did the work, the caller's connection just drops."""

    # Releases go out in batches; a single create is still the WMS's way for one.
    CREATE = (
        b"POST /wms/v1/fulfillment-orders/batch HTTP/1.1",
        b"POST /wms/v1/fulfillment-orders HTTP/1.1",
    )

    def __init__(self, port: int, upstream: int, *, lose: int) -> None:
        super().__init__(port)
        self.upstream = upstream
        self.to_lose = lose
        self.lost = 0

    def handle(self, connection: socket.socket) -> None:
        server = self.keep(socket.create_connection(("127.0.0.1", self.upstream)))
        losing = threading.Event()
        self.spawn(self._answers, server, connection, losing)
        for chunk in self.chunks(connection):
            if chunk.startswith(self.CREATE):
                with self.lock:
                    if self.to_lose > 0:
                        self.to_lose -= 1
                        losing.set()
            server.sendall(chunk)
        server.shutdown(socket.SHUT_RDWR)

    def _answers(
        self, server: socket.socket, client: socket.socket, losing: threading.Event
    ) -> None:
        for chunk in self.chunks(server):
            if losing.is_set():  # the WMS has answered (committed): drop it and hang up
                with self.lock:
                    self.lost += 1
                break
            client.sendall(chunk)
        client.shutdown(socket.SHUT_RDWR)


# -- the WMS -------------------------------------------------------------------


def test_the_wms_down_for_a_burst_of_50_orders_then_back(full_stack: Stack, warehouse: str) -> None:
    customer_id = new_customer(full_stack)
    sku = stocked_item(full_stack, warehouse, 200)
    quantities = [1 + n % 3 for n in range(50)]
    with full_stack.down("wms"):
        with ThreadPoolExecutor(8) as pool:
            answers = list(
                pool.map(lambda q: timed_place(full_stack, body(customer_id, (sku, q))), quantities)
            )
        placed = []
        for (response, seconds), quantity in zip(answers, quantities, strict=True):
            # Intake never waits on the WMS: every order answered, and at once.
            assert response.status_code == 201, response.text
            assert seconds < QUICK, seconds
            order = response.json()
            assert order["status"] == "accepted"
            assert order["releases_pending"] > 0
            assert order["lines"][0]["allocated"] == quantity
            placed.append(order)
        assert len({order["order_id"] for order in placed}) == 50
        assert allocated(full_stack, sku) == sum(quantities)
        # The releaser's calls failed: the circuit to the WMS opened, nothing went out.
        wait_circuit(full_stack, "wms", OPEN)
        first = order_of(full_stack, placed[0]["order_id"])
        assert first["status"] == "accepted" and first["releases_pending"] > 0
    for order in placed:
        released = wait_released(full_stack, order["order_id"])
        released_once(full_stack, released, warehouse)
    wait_circuit(full_stack, "wms", CLOSED)
    assert allocated(full_stack, sku) == sum(quantities)
    assert len(orders_of(full_stack, customer_id)) == 50


def test_a_frozen_wms_does_not_slow_intake(full_stack: Stack, warehouse: str) -> None:
    """The WMS accepts connections and never answers: the releaser's call hangs (a
    10 s read timeout) while orders are answered 201 at once."""
    customer_id = new_customer(full_stack)
    sku = stocked_item(full_stack, warehouse, 10)
    with full_stack.down("wms"), FrozenServer(full_stack.ports["wms"]) as frozen:
        response, seconds = timed_place(full_stack, body(customer_id, (sku, 2)))
        assert response.status_code == 201, response.text
        assert seconds < QUICK, seconds
        first = response.json()
        assert first["status"] == "accepted" and first["releases_pending"] == 1
        # The releaser has sent its release and waits for an answer that never comes.
        wait_until(
            lambda: b"POST /wms/v1/fulfillment-orders" in frozen.received(),
            what="the releaser's call to the frozen WMS",
        )
        response, seconds = timed_place(full_stack, body(customer_id, (sku, 3)))
        assert response.status_code == 201, response.text
        assert seconds < QUICK, seconds
        second = response.json()
        assert second["status"] == "accepted" and second["releases_pending"] == 1
        stuck = order_of(full_stack, first["order_id"])
        assert stuck["status"] == "accepted" and stuck["releases_pending"] == 1
    # The frozen connections close and the WMS returns: each release goes out once.
    for order in (first, second):
        released_once(full_stack, wait_released(full_stack, order["order_id"]), warehouse)
    assert allocated(full_stack, sku) == 5


def test_a_lost_answer_of_the_wms_still_releases_once(full_stack: Stack, warehouse: str) -> None:
    """The WMS creates the fulfillment order but its answer never arrives: the releaser
    sends the release again under the same key and the WMS answers the one it made."""
    customer_id = new_customer(full_stack)
    sku = stocked_item(full_stack, warehouse, 10)
    with (
        full_stack.down("wms"),
        ThreadServer(full_stack.app("wms")) as wms,
        LossyProxy(full_stack.ports["wms"], wms.port, lose=3) as proxy,
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


# -- availability ----------------------------------------------------------------


def test_availability_down_answers_202_naming_the_order_and_finishes_it_once(
    full_stack: Stack, warehouse: str
) -> None:
    customer_id = new_customer(full_stack)
    sku = stocked_item(full_stack, warehouse, 10)
    order, key = body(customer_id, (sku, 3)), uid("outage")
    with full_stack.down("availability"):
        # The same key sent four times at once: one order, each answer names it.
        with ThreadPoolExecutor(4) as pool:
            answers = list(pool.map(lambda _: place(full_stack, order, key), range(4)))
        assert [a.status_code for a in answers] == [202] * 4, [a.text for a in answers]
        (order_id,) = {a.json()["order_id"] for a in answers}
        pending = answers[0].json()
        assert pending["status"] == "pending"
        assert pending["lines"][0]["allocated"] == 0
        # A retry is answered at once with the same order: never a 409, never a new one.
        again, seconds = timed_place(full_stack, order, key)
        assert again.status_code == 202, again.text
        assert again.json()["order_id"] == order_id
        assert seconds < QUICK, seconds
        assert [o["order_id"] for o in orders_of(full_stack, customer_id)] == [order_id]

    # Availability is back: the resumer allocates the order; the key answers the 201.
    accepted = answered_201(full_stack, order, key, order_id)
    assert accepted["status"] == "accepted"
    assert accepted["lines"][0]["allocated"] == 3
    assert allocated(full_stack, sku) == 3
    released_once(full_stack, wait_released(full_stack, order_id), warehouse)
    assert [o["order_id"] for o in orders_of(full_stack, customer_id)] == [order_id]


def test_a_frozen_availability_answers_202_before_a_gateway_gives_up(
    full_stack: Stack, warehouse: str
) -> None:
    """Availability accepts connections and never answers: the order is answered 202
    (named, pending) in a few seconds, not after the allocation's timeouts and retries
    (4 x 10 s), which a gateway would have turned into a 504 with the order left behind."""
    customer_id = new_customer(full_stack)
    sku = stocked_item(full_stack, warehouse, 10)
    order, key = body(customer_id, (sku, 2)), uid("frozen")
    with (
        full_stack.down("availability"),
        FrozenServer(full_stack.ports["availability"]) as frozen,
    ):
        response, seconds = timed_place(full_stack, order, key)
        assert response.status_code == 202, response.text
        assert seconds < 15, seconds  # the gateway's upstream timeout is 30 s
        pending = response.json()
        assert pending["status"] == "pending"
        assert b"POST /availability/v1/allocations" in frozen.received()
        again, seconds = timed_place(full_stack, order, key)
        assert again.status_code == 202, again.text
        assert again.json()["order_id"] == pending["order_id"]
        assert seconds < QUICK, seconds
    accepted = answered_201(full_stack, order, key, pending["order_id"])
    assert accepted["lines"][0]["allocated"] == 2
    assert allocated(full_stack, sku) == 2
    released_once(full_stack, wait_released(full_stack, pending["order_id"]), warehouse)
    assert [o["order_id"] for o in orders_of(full_stack, customer_id)] == [pending["order_id"]]


# -- the ERP -------------------------------------------------------------------


def test_the_erp_down_refuses_with_503_and_writes_nothing(
    full_stack: Stack, warehouse: str
) -> None:
    customer_id = new_customer(full_stack)
    sku = stocked_item(full_stack, warehouse, 10)
    order, key = body(customer_id, (sku, 2)), uid("erp-down")
    with full_stack.down("erp"):
        for _ in range(2):  # the same key again: the same refusal, nothing remembered
            refused = place(full_stack, order, key)
            assert_problem(refused, 503, "downstream-unavailable")
            assert int(refused.headers["retry-after"]) >= 1
        assert orders_of(full_stack, customer_id) == []
        assert allocated(full_stack, sku) == 0

    def placed() -> Any:
        retry = place(full_stack, order, key)
        if retry.status_code == 503:  # the circuit's cool-down: as a client would, wait
            time.sleep(int(retry.headers["retry-after"]))
            return None
        return retry

    # The ERP is back: the same key places the order, once.
    answer = wait_until(placed, timeout=RECOVERY, what="the order placed after the ERP returned")
    assert answer.status_code == 201, answer.text
    order_id = answer.json()["order_id"]
    replay = place(full_stack, order, key)
    assert replay.status_code == 201 and replay.json()["order_id"] == order_id
    assert [o["order_id"] for o in orders_of(full_stack, customer_id)] == [order_id]
    assert allocated(full_stack, sku) == 2


def test_the_erp_down_does_not_stop_shipments_or_releases(
    full_stack: Stack, warehouse: str
) -> None:
    """Orders already accepted ship, and backorders fill and go to the WMS, with the ERP
    down; the sales-order sync waits and then sends each order's latest version."""
    customer_id = new_customer(full_stack)
    sku = stocked_item(full_stack, warehouse, 4)
    short = new_item(full_stack)  # no stock yet: the order backorders it
    response = place(full_stack, body(customer_id, (sku, 4)))
    assert response.status_code == 201, response.text
    shipping = wait_released(full_stack, response.json()["order_id"])
    response = place(full_stack, body(customer_id, (short, 3), policy="partial"))
    assert response.status_code == 201, response.text
    backordered = response.json()
    assert backordered["status"] == "backordered", backordered
    for order in (shipping, backordered):
        wait_synced(full_stack, order["order_id"])
    with full_stack.down("erp"):
        (fo,) = fulfillment_orders(full_stack, shipping["order_id"])
        ship(full_stack, fo, [(sku, 4)])
        wait_for(full_stack, shipping["order_id"], lambda o: o["status"] == "shipped")
        with full_stack.client("wms", "wms:write") as wms:
            receipt = wms.post(
                "/wms/v1/receipts",
                json={"warehouse_id": warehouse, "lines": [{"sku": short, "quantity": 3}]},
                headers={"Idempotency-Key": uid("rcpt")},
            )
        assert receipt.status_code == 201, receipt.text
        filled = wait_released(full_stack, backordered["order_id"])
        released_once(full_stack, filled, warehouse)
    for order_id in (shipping["order_id"], backordered["order_id"]):
        synced = wait_synced(full_stack, order_id)
        assert synced["status"] == "open"
        latest = order_of(full_stack, order_id)
        assert [(line["sku"], line["quantity"]) for line in synced["lines"]] == [
            (line["sku"], line["quantity"]) for line in latest["lines"]
        ]
