"""The process APIs as the portal reads them: their documented v1 response shapes
(decoded leniently: unknown fields are ignored) and the calls, always made with the
CALLER's bearer token so each process API applies scopes and customer binding itself.

HTTP outcomes become GraphQL errors with a stable ``extensions.code``; a 404 becomes
``None`` (the resource is unknown or not visible to this caller)."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Any, TypeVar
from urllib.parse import quote

import httpx
import msgspec
from graphql import GraphQLError

from shared.http import Downstream
from shared.models import CURSOR_PATTERN, Identifier, Sku
from shared.problems import ProblemError

T = TypeVar("T")

# What the process APIs accept as a cursor (shared.models.CursorParam).
Cursor = Annotated[str, msgspec.Meta(max_length=200, pattern=CURSOR_PATTERN)]

MAX_INVOICE_PAGES = 20
INVOICE_PAGE_SIZE = 500


# Wire shapes (ADR 0002). Only what the portal reads; extra fields are ignored.
class MoneyDoc(msgspec.Struct, frozen=True):
    amount_minor: int
    currency: str


class OrderLineDoc(msgspec.Struct, frozen=True):
    sku: str
    quantity: int
    allocated: int = 0
    backordered: int = 0
    shipped: int = 0
    unit_price: MoneyDoc | None = None


class ItemQuantityDoc(msgspec.Struct, frozen=True):
    sku: str
    quantity: int


class ShipmentDoc(msgspec.Struct, frozen=True):
    shipment_id: str
    carrier: str
    tracking_number: str
    lines: list[ItemQuantityDoc] = []
    shipped_at: datetime | None = None


class OrderDoc(msgspec.Struct, frozen=True):
    order_id: str
    status: str
    customer_id: str
    channel: str
    lines: list[OrderLineDoc]
    shipments: list[ShipmentDoc] = []
    currency: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None


class OrderPageDoc(msgspec.Struct, frozen=True):
    items: list[OrderDoc]
    next_cursor: str | None = None


class InvoiceLineDoc(msgspec.Struct, frozen=True):
    sku: str
    quantity: int
    unit_price: MoneyDoc | None = None
    amount: MoneyDoc | None = None


class InvoiceDoc(msgspec.Struct, frozen=True):
    invoice_id: str
    order_id: str
    status: str
    total: MoneyDoc
    shipment_id: str | None = None
    lines: list[InvoiceLineDoc] = []
    issued_at: datetime | None = None


class InvoicePageDoc(msgspec.Struct, frozen=True):
    items: list[InvoiceDoc]
    next_cursor: str | None = None


class LocationDoc(msgspec.Struct, frozen=True):
    location_id: str
    on_hand: int
    allocated: int
    available_to_promise: int


class AvailabilityDoc(msgspec.Struct, frozen=True):
    sku: str
    available_to_promise: int
    as_of: datetime
    locations: list[LocationDoc] = []


class PortalError(GraphQLError):
    """A GraphQL error whose message is safe to show and whose code is stable."""

    def __init__(self, message: str, code: str, **details: Any) -> None:
        super().__init__(message, extensions={"code": code, **details})


def bad_input(message: str) -> PortalError:
    return PortalError(message, "BAD_USER_INPUT")


def well_formed(value: str, kind: Any) -> bool:
    """An id that breaks the id rules names nothing: answered as "not found" without a
    call upstream (so it can never smuggle a path into the REST request)."""
    try:
        msgspec.convert(value, kind)
    except msgspec.ValidationError:
        return False
    return True


_CODES_BY_STATUS = {
    400: "BAD_USER_INPUT",
    401: "UNAUTHENTICATED",
    403: "FORBIDDEN",
    422: "BAD_USER_INPUT",
    429: "RATE_LIMITED",
}


class ProcessApis:
    """One request's view of the process APIs, bound to the caller's token."""

    def __init__(
        self, *, orders: Downstream, billing: Downstream, availability: Downstream, bearer: str
    ) -> None:
        if not bearer:
            # Without it Downstream would fall back to this service's own token.
            raise ValueError("the caller's bearer token is required")
        self.orders = orders
        self.billing = billing
        self.availability = availability
        self.bearer = bearer

    async def order(self, order_id: str) -> OrderDoc | None:
        if not well_formed(order_id, Identifier):
            return None
        path = f"/orders/v1/orders/{quote(order_id, safe='')}"
        return await self._get(self.orders, path, OrderDoc)

    async def order_page(
        self, customer_id: str | None, limit: int, cursor: str | None
    ) -> OrderPageDoc:
        """One page of the orders this caller may see (the order API filters a bound
        caller to its own customer whatever ``customer_id`` says). A malformed customer
        id or cursor names no orders: an empty page, and nothing is sent upstream."""
        if (customer_id is not None and not well_formed(customer_id, Identifier)) or (
            cursor is not None and not well_formed(cursor, Cursor)
        ):
            return OrderPageDoc(items=[])
        params: list[tuple[str, str | int]] = [("limit", limit)]
        if customer_id is not None:
            params.append(("customer_id", customer_id))
        if cursor:
            params.append(("cursor", cursor))
        page = await self._get(self.orders, "/orders/v1/orders", OrderPageDoc, params)
        return page or OrderPageDoc(items=[])

    async def orders_by_id(self, order_ids: Sequence[str]) -> list[OrderDoc | BaseException | None]:
        """Each order concurrently, all answered together (so the orders' own fields, such
        as invoices, are resolved in the same tick and batch into one request)."""
        return await asyncio.gather(*map(self.order, order_ids), return_exceptions=True)

    async def item_availability(self, sku: str) -> AvailabilityDoc | None:
        if not well_formed(sku, Sku):
            return None
        path = f"/availability/v1/items/{quote(sku, safe='')}"
        return await self._get(self.availability, path, AvailabilityDoc)

    async def invoices_by_order(self, order_ids: Sequence[str]) -> list[list[InvoiceDoc]]:
        """All invoices of these orders in one request (more only if it pages)."""
        found: defaultdict[str, list[InvoiceDoc]] = defaultdict(list)
        params: list[tuple[str, str | int]] = [("order_id", o) for o in order_ids]
        params.append(("limit", INVOICE_PAGE_SIZE))
        cursor: str | None = None
        for _ in range(MAX_INVOICE_PAGES):
            page_params = [*params, ("cursor", cursor)] if cursor else params
            page = await self._get(
                self.billing, "/billing/v1/invoices", InvoicePageDoc, page_params
            )
            if page is None:
                break
            for invoice in page.items:
                found[invoice.order_id].append(invoice)
            cursor = page.next_cursor
            if not cursor:
                break
        return [found.get(order_id, []) for order_id in order_ids]

    async def _get(
        self,
        downstream: Downstream,
        path: str,
        shape: type[T],
        params: list[tuple[str, str | int]] | None = None,
    ) -> T | None:
        try:
            response = await downstream.request("GET", path, params=params, bearer=self.bearer)
        except ProblemError as exc:  # unreachable or still 502/503/504 after retries
            raise _unavailable(downstream.name) from exc
        if response.status_code == 404:
            return None
        if response.status_code >= 500:
            raise _unavailable(downstream.name)
        if response.status_code >= 400:
            raise _refused(downstream.name, response)
        try:
            return msgspec.json.decode(response.content, type=shape)
        except msgspec.DecodeError as exc:
            raise PortalError(
                f"The {downstream.name} service answered in an unexpected shape.",
                "DOWNSTREAM_CONTRACT_VIOLATION",
                service=downstream.name,
            ) from exc


def _unavailable(service: str) -> PortalError:
    return PortalError(
        f"The {service} service is not reachable right now; retry later.",
        "DOWNSTREAM_UNAVAILABLE",
        service=service,
    )


def _refused(service: str, response: httpx.Response) -> PortalError:
    problem: dict[str, Any] = {}
    if response.headers.get("content-type", "").startswith("application/problem+json"):
        try:
            decoded = response.json()
        except ValueError:
            decoded = None
        problem = decoded if isinstance(decoded, dict) else {}
    detail = problem.get("detail") or f"The {service} service refused the request."
    details: dict[str, Any] = {"service": service, "status": response.status_code}
    if isinstance(problem.get("type"), str):
        details["problemType"] = problem["type"]
    code = _CODES_BY_STATUS.get(response.status_code, "DOWNSTREAM_ERROR")
    return PortalError(str(detail), code, **details)
