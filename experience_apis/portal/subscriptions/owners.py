"""Whose is an order, and which carrier carries its shipments: the WMS's shipment
events name only the order. Read from the orders API with the portal's own service
token (its client needs ``orders:read``), cached per process: an order never changes
customer, and a shipment never changes carrier or tracking number."""

from __future__ import annotations

import logging
from collections import OrderedDict
from dataclasses import dataclass
from typing import TypeVar
from urllib.parse import quote

import msgspec

from experience_apis.portal.wire import OrderDoc
from shared.http import Downstream
from shared.problems import ProblemError

log = logging.getLogger("tally.portal.subscriptions")

CACHE_SIZE = 10_000
V = TypeVar("V")


@dataclass(frozen=True)
class Carried:
    carrier: str
    tracking_number: str


class Owners:
    def __init__(self, orders: Downstream, size: int = CACHE_SIZE) -> None:
        self.orders = orders
        self.size = size
        self._customers: OrderedDict[str, str] = OrderedDict()
        self._shipments: OrderedDict[str, Carried] = OrderedDict()

    def remember_shipment(self, shipment_id: str, carried: Carried) -> None:
        _put(self._shipments, shipment_id, carried, self.size)

    def shipment(self, shipment_id: str) -> Carried | None:
        return self._shipments.get(shipment_id)

    def remember_customer(self, order_id: str, customer_id: str) -> None:
        _put(self._customers, order_id, customer_id, self.size)

    async def customer_of(self, order_id: str, *, refresh: bool = False) -> str | None:
        """The order's customer; None when the orders API does not know it or cannot
        be reached (the update is dropped, logged). ``refresh`` reads the order again
        (a shipment this process has not seen dispatched)."""
        known = self._customers.get(order_id)
        if known is not None and not refresh:
            self._customers.move_to_end(order_id)
            return known
        doc = await self._read(order_id)
        if doc is None:
            return known
        self.remember_customer(order_id, doc.customer_id)
        for shipment in doc.shipments:
            self.remember_shipment(
                shipment.shipment_id, Carried(shipment.carrier, shipment.tracking_number)
            )
        return doc.customer_id

    async def _read(self, order_id: str) -> OrderDoc | None:
        path = f"/orders/v1/orders/{quote(order_id, safe='')}"
        try:
            response = await self.orders.request("GET", path)
        except ProblemError as exc:
            log.warning("order %s: the orders API is unavailable (%s)", order_id, exc)
            return None
        if response.status_code != 200:
            log.warning("order %s: the orders API answered %s", order_id, response.status_code)
            return None
        try:
            return msgspec.json.decode(response.content, type=OrderDoc)
        except msgspec.DecodeError:
            log.warning("order %s: the orders API answered an unexpected body", order_id)
            return None


def _put(cache: OrderedDict[str, V], key: str, value: V, size: int) -> None:
    cache[key] = value
    cache.move_to_end(key)
    while len(cache) > size:
        cache.popitem(last=False)
