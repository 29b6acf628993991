"""The process APIs as the portal calls them, always with the CALLER's bearer token so
each process API applies scopes and customer binding itself (the wire shapes are in
``wire.py``).

Reads: HTTP outcomes become GraphQL errors with a stable ``extensions.code``; a 404
becomes ``None`` (unknown or not visible to this caller). Writes answer an ``Answer``
(status and problem or body) that the mutations turn into typed results.

Every call is reported to ``observer`` when one is set (the tests count calls with it;
see ``context.CALL_OBSERVER``)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, TypeVar
from urllib.parse import quote

import httpx
import msgspec
from graphql import GraphQLError

from experience_apis.portal.wire import (
    AccountDoc,
    AvailabilityBatchDoc,
    AvailabilityDoc,
    BalanceDoc,
    CatalogItemDoc,
    CreditNoteDoc,
    HistoryBatchDoc,
    HoldDoc,
    InvoiceDoc,
    MoneyDoc,
    OrderDoc,
    OrderHistoryDoc,
    PageDoc,
    PaymentDoc,
    RmaDoc,
    StatementDoc,
)
from shared.http import Downstream
from shared.models import CURSOR_PATTERN, Identifier, Sku
from shared.problems import ProblemError

__all__ = ["AvailabilityDoc", "InvoiceDoc", "MoneyDoc", "OrderDoc"]  # re-exported

T = TypeVar("T")
Params = list[tuple[str, str | int]]
Observer = Callable[[str, str, str], None]  # (service, method, path)

# What the process APIs accept as a cursor (shared.models.CursorParam).
Cursor = Annotated[str, msgspec.Meta(max_length=200, pattern=CURSOR_PATTERN)]

BATCH = 100  # ids per batch read (the process APIs' bound)
PAGE_SIZE = 500  # rows per page of a batch read
MAX_PAGES = 20


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


def ids(values: Sequence[str]) -> list[str]:
    return [v for v in dict.fromkeys(values) if well_formed(v, Identifier)]


def chunks(values: Sequence[str], size: int = BATCH) -> list[list[str]]:
    return [list(values[i : i + size]) for i in range(0, len(values), size)]


_CODES_BY_STATUS = {
    400: "BAD_USER_INPUT",
    401: "UNAUTHENTICATED",
    403: "FORBIDDEN",
    422: "BAD_USER_INPUT",
    429: "RATE_LIMITED",
}


@dataclass(frozen=True)
class Answer:
    """A write's outcome: ``status`` 0 when the service could not be reached."""

    status: int
    body: dict[str, Any] = field(default_factory=dict)

    @property
    def problem_type(self) -> str:
        return str(self.body.get("type", ""))

    @property
    def detail(self) -> str:
        return str(self.body.get("detail") or self.body.get("title") or "")


@dataclass
class OrderFilter:
    status: list[str] = field(default_factory=list)
    placed_from: str | None = None
    placed_to: str | None = None
    sku: str | None = None
    channel: str | None = None

    def params(self) -> Params:
        found: Params = [("status", s) for s in self.status]
        for name in ("placed_from", "placed_to", "sku", "channel"):
            value = getattr(self, name)
            if value is not None:
                found.append((name, value))
        return found


class ProcessApis:
    """One request's view of the process APIs, bound to the caller's token."""

    def __init__(
        self,
        *,
        orders: Downstream,
        billing: Downstream,
        availability: Downstream,
        bearer: str,
        observer: Observer | None = None,
    ) -> None:
        if not bearer:
            # Without it Downstream would fall back to this service's own token.
            raise ValueError("the caller's bearer token is required")
        self.orders = orders
        self.billing = billing
        self.availability = availability
        self.bearer = bearer
        self.observer = observer

    # -- orders ---------------------------------------------------------------------
    async def order_page(
        self,
        customer_id: str | None,
        limit: int,
        cursor: str | None,
        where: OrderFilter | None = None,
        *,
        count: bool = False,
    ) -> PageDoc:
        """One page of the orders this caller may see (the order API filters a bound
        caller to its own customer whatever ``customer_id`` says). A malformed customer
        id or cursor names no orders: an empty page, and nothing is sent upstream."""
        if (customer_id is not None and not well_formed(customer_id, Identifier)) or (
            cursor is not None and not well_formed(cursor, Cursor)
        ):
            return PageDoc(items=[], total_count=0 if count else None)
        params: Params = [("limit", limit)]
        if customer_id is not None:
            params.append(("customer_id", customer_id))
        if cursor:
            params.append(("cursor", cursor))
        if where is not None:
            params += where.params()
        if count:
            params.append(("count", "true"))
        page = await self._get(self.orders, "/orders/v1/orders", PageDoc, params)
        return page or PageDoc(items=[])

    async def orders_by_id(self, order_ids: Sequence[str]) -> list[OrderDoc | None]:
        """The orders of these ids the caller may see: one batch read per 100 ids."""
        found: dict[str, OrderDoc] = {}
        for batch in chunks(ids(order_ids)):
            params: Params = [("order_id", o) for o in batch]
            params.append(("limit", len(batch)))
            page = await self._get(self.orders, "/orders/v1/orders", PageDoc, params)
            for order in decode_items(page or PageDoc(items=[]), OrderDoc, self.orders.name):
                found[order.order_id] = order
        return [found.get(order_id) for order_id in order_ids]

    async def history_by_order(self, order_ids: Sequence[str]) -> list[list[Any]]:
        found: dict[str, OrderHistoryDoc] = {}
        for batch in chunks(ids(order_ids)):
            params: Params = [("order_id", o) for o in batch]
            doc = await self._get(self.orders, "/orders/v1/history", HistoryBatchDoc, params)
            for item in doc.items if doc else []:
                found[item.order_id] = item
        return [list(found[o].entries) if o in found else [] for o in order_ids]

    async def returns_by_order(self, order_ids: Sequence[str]) -> list[list[RmaDoc]]:
        rows = await self._batch(self.orders, "/orders/v1/returns", "order_id", order_ids, RmaDoc)
        return _group(rows, order_ids, lambda r: r.order_id)

    async def return_page(
        self, customer_id: str, limit: int, cursor: str | None, status: list[str]
    ) -> PageDoc:
        params = _page_params(customer_id, limit, cursor, count=True)
        params += [("status", s) for s in status]
        return await self._page(self.orders, "/orders/v1/returns", params, cursor)

    async def account(self, customer_id: str) -> AccountDoc | None:
        if not well_formed(customer_id, Identifier):
            return None
        path = f"/orders/v1/customers/{quote(customer_id, safe='')}/account"
        return await self._get(self.orders, path, AccountDoc)

    async def catalog_item(self, sku: str, customer_id: str | None) -> CatalogItemDoc | None:
        if not well_formed(sku, Sku):
            return None
        params: Params = [("customer_id", customer_id)] if customer_id else []
        path = f"/orders/v1/catalog/items/{quote(sku, safe='')}"
        return await self._get(self.orders, path, CatalogItemDoc, params)

    async def catalog_page(
        self, search: str | None, customer_id: str | None, limit: int, cursor: str | None
    ) -> PageDoc:
        params: Params = [("limit", limit)]
        if search:
            params.append(("search", search))
        if customer_id:
            params.append(("customer_id", customer_id))
        if cursor:
            params.append(("cursor", cursor))
        return await self._page(self.orders, "/orders/v1/catalog/items", params, cursor)

    # -- billing --------------------------------------------------------------------
    async def invoices_by_order(self, order_ids: Sequence[str]) -> list[list[InvoiceDoc]]:
        path = "/billing/v1/invoices"
        rows = await self._batch(self.billing, path, "order_id", order_ids, InvoiceDoc)
        return _group(rows, order_ids, lambda i: i.order_id)

    async def payments_by_invoice(self, invoice_ids: Sequence[str]) -> list[list[PaymentDoc]]:
        path = "/billing/v1/payments"
        rows = await self._batch(self.billing, path, "invoice_id", invoice_ids, PaymentDoc)
        found: dict[str, list[PaymentDoc]] = {}
        for payment in rows:
            for applied in payment.applied:
                found.setdefault(applied.invoice_id, []).append(payment)
        return [found.get(i, []) for i in invoice_ids]

    async def credit_notes_by_invoice(
        self, invoice_ids: Sequence[str]
    ) -> list[list[CreditNoteDoc]]:
        path = "/billing/v1/credit-notes"
        rows = await self._batch(self.billing, path, "invoice_id", invoice_ids, CreditNoteDoc)
        return _group(rows, invoice_ids, lambda n: n.invoice_id)

    async def billing_page(
        self, what: str, customer_id: str, limit: int, cursor: str | None
    ) -> PageDoc:
        """``what``: invoices or credit-notes, of one customer."""
        params = _page_params(customer_id, limit, cursor, count=True)
        return await self._page(self.billing, f"/billing/v1/{what}", params, cursor)

    async def balance(self, customer_id: str) -> BalanceDoc | None:
        if not well_formed(customer_id, Identifier):
            return None
        path = f"/billing/v1/customers/{quote(customer_id, safe='')}/balance"
        return await self._get(self.billing, path, BalanceDoc)

    async def statement(self, customer_id: str) -> StatementDoc | None:
        if not well_formed(customer_id, Identifier):
            return None
        path = f"/billing/v1/customers/{quote(customer_id, safe='')}/statement"
        return await self._get(self.billing, path, StatementDoc)

    # -- availability ---------------------------------------------------------------
    async def availability_of(
        self, skus: Sequence[str], channel: str | None, customer_group: str | None = None
    ) -> dict[str, AvailabilityDoc]:
        """Every well-formed sku in ONE call to availability v2's batch read."""
        wanted = [s for s in dict.fromkeys(skus) if well_formed(s, Sku)]
        if not wanted:
            return {}
        params: Params = [("sku", s) for s in wanted]
        if channel is not None:
            params.append(("channel", channel))
            if customer_group is not None and well_formed(customer_group, Identifier):
                params.append(("customer_group", customer_group))
        path = "/availability/v2/items"
        doc = await self._get(self.availability, path, AvailabilityBatchDoc, params)
        return {item.sku: item for item in doc.items} if doc else {}

    async def hold(self, hold_id: str) -> HoldDoc | None:
        if not well_formed(hold_id, Identifier):
            return None
        path = f"/availability/v1/holds/{quote(hold_id, safe='')}"
        return await self._get(self.availability, path, HoldDoc)

    # -- writes ---------------------------------------------------------------------
    async def write(
        self, service: str, path: str, body: Any, key: str | None, method: str = "POST"
    ) -> Answer:
        downstream = {"orders": self.orders, "availability": self.availability}[service]
        self._observe(downstream, method, path)
        try:
            response = await downstream.request(
                method, path, json=body, idempotency_key=key, bearer=self.bearer
            )
        except ProblemError:
            return Answer(0, {"detail": f"The {downstream.name} service is not reachable."})
        try:
            decoded = response.json() if response.content else {}
        except ValueError:
            decoded = {}
        return Answer(response.status_code, decoded if isinstance(decoded, dict) else {})

    # -- plumbing -------------------------------------------------------------------
    async def _batch(
        self, downstream: Downstream, path: str, name: str, keys: Sequence[str], shape: type[T]
    ) -> list[T]:
        """Every row of these keys, one request per 100 keys (more only if it pages)."""
        rows: list[T] = []
        for batch in chunks(ids(keys)):
            params: Params = [(name, k) for k in batch]
            params.append(("limit", PAGE_SIZE))
            cursor: str | None = None
            for _ in range(MAX_PAGES):
                page_params = [*params, ("cursor", cursor)] if cursor else params
                page = await self._get(downstream, path, PageDoc, page_params)
                if page is None:
                    break
                rows += decode_items(page, shape, downstream.name)
                cursor = page.next_cursor
                if not cursor:
                    break
        return rows

    async def _page(
        self, downstream: Downstream, path: str, params: Params, cursor: str | None
    ) -> PageDoc:
        if cursor is not None and not well_formed(cursor, Cursor):
            return PageDoc(items=[], total_count=0)
        return await self._get(downstream, path, PageDoc, params) or PageDoc(items=[])

    def _observe(self, downstream: Downstream, method: str, path: str) -> None:
        if self.observer is not None:
            self.observer(downstream.name, method, path)

    async def _get(
        self, downstream: Downstream, path: str, shape: type[T], params: Params | None = None
    ) -> T | None:
        self._observe(downstream, "GET", path)
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
            raise _contract_violation(downstream.name) from exc


def decode_items(page: PageDoc, shape: type[T], service: str) -> list[T]:
    try:
        return [msgspec.json.decode(raw, type=shape) for raw in page.items]
    except msgspec.DecodeError as exc:  # ValidationError included
        raise _contract_violation(service) from exc


def _contract_violation(service: str) -> PortalError:
    return PortalError(
        f"The {service} service answered in an unexpected shape.",
        "DOWNSTREAM_CONTRACT_VIOLATION",
        service=service,
    )


def _page_params(customer_id: str, limit: int, cursor: str | None, *, count: bool) -> Params:
    params: Params = [("customer_id", customer_id), ("limit", limit)]
    if cursor:
        params.append(("cursor", cursor))
    if count:
        params.append(("count", "true"))
    return params


def _group(rows: Sequence[T], keys: Sequence[str], key: Callable[[T], str]) -> list[list[T]]:
    found: dict[str, list[T]] = {}
    for row in rows:
        found.setdefault(key(row), []).append(row)
    return [found.get(k, []) for k in keys]


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
