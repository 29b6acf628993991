"""The calls this service makes to the ERP, availability and the WMS (contract 0002),
mapped onto three outcomes: an answer, a refusal the saga compensates, or a
``Refusal(503)`` from ``Downstream`` when the partner is unreachable (transient:
the order stays ``pending`` and the resumer retries)."""

from __future__ import annotations

import logging
from typing import Any

import httpx
import msgspec

from shared.http import Downstream
from shared.service import Runtime

log = logging.getLogger("tally.orders.partners")

_PROBLEM_KEYS = {"type", "title", "status", "detail", "instance", "correlation_id"}


def _problem(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


class Refused(Exception):
    """A partner answered with a definite refusal; nothing was done on its side."""

    def __init__(
        self, service: str, response: httpx.Response, *, item: dict[str, Any] | None = None
    ) -> None:
        """The refusal of a call (``response``), or of one ``item`` of a batch call (its
        refusal: the problem its single call would have answered)."""
        self.service = service
        self.problem = _problem(response) if item is None else item
        self.status_code = response.status_code if item is None else int(item["status"])
        self.type = str(self.problem.get("type", ""))
        self.detail = str(self.problem.get("detail") or f"{service} answered {self.status_code}")
        super().__init__(f"{service}: {self.status_code} {self.type} {self.detail}")

    @property
    def extra(self) -> dict[str, Any]:
        """The partner's problem members beyond the standard ones (e.g. per-line shortfalls)."""
        return {k: v for k, v in self.problem.items() if k not in _PROBLEM_KEYS}


def _ok(service: str, response: httpx.Response) -> Any:
    if response.is_success:
        return msgspec.json.decode(response.content)  # faster than json.loads
    raise Refused(service, response)


def _per_item(service: str, response: httpx.Response, ids: list[str], field: str) -> dict[str, Any]:
    """A batch call's answer per id (its items in the order sent): the item's ``field``,
    or that item's refusal."""
    results = _ok(service, response)["results"]
    return {
        id_: Refused(service, response, item=result["refusal"])
        if "refusal" in result
        else result[field]
        for id_, result in zip(ids, results, strict=True)
    }


class Partners:
    def __init__(self, runtime: Runtime) -> None:
        self.erp: Downstream = runtime.downstream("erp")
        self.availability: Downstream = runtime.downstream("availability")
        self.wms: Downstream = runtime.downstream("wms")

    # -- ERP: the customer master, prices and credit ------------------------------------
    async def order_terms(self, customer_id: str, skus: list[str]) -> dict[str, Any] | None:
        """The customer, its prices for ``skus`` and its credit exposure, in one read."""
        params = [("sku", sku) for sku in skus]
        response = await self.erp.request(
            "GET", f"/erp/v1/customers/{customer_id}/order-terms", params=params
        )
        if response.status_code == 404:
            return None
        result: dict[str, Any] = _ok("erp", response)
        return result

    async def order_terms_many(
        self, reads: list[tuple[str, list[str]]]
    ) -> list[dict[str, Any] | Refused]:
        """Up to 100 ``order_terms`` reads (customer, up to 100 skus) in one call: per
        read, in order, the terms or that read's refusal (404: no such customer)."""
        body = {"reads": [{"customer_id": c, "skus": skus} for c, skus in reads]}
        response = await self.erp.request("POST", "/erp/v1/order-terms/batch", json=body)
        return [
            Refused("erp", response, item=result["refusal"])
            if "refusal" in result
            else result["terms"]
            for result in _ok("erp", response)["results"]
        ]

    async def put_sales_orders(self, bodies: list[dict[str, Any]]) -> dict[str, str | None]:
        """Books up to 100 sales orders (each body with its ``order_id``) in one call;
        per order id, None when booked, else the ERP's refusal of that one."""
        answer = _ok(
            "erp",
            await self.erp.request(
                "POST", "/erp/v1/sales-orders/batch", json={"sales_orders": bodies}
            ),
        )
        return {
            result["order_id"]: (
                None
                if result.get("refusal") is None
                else f"{result['refusal']['type']}: {result['refusal']['detail']}"
            )
            for result in answer["results"]
        }

    # -- availability --------------------------------------------------------
    async def allocate(self, order_id: str, body: dict[str, Any]) -> dict[str, Any]:
        response = await self.availability.request(
            "POST",
            "/availability/v1/allocations",
            json={"order_id": order_id, **body},
            idempotency_key=f"alloc:{order_id}",
        )
        result: dict[str, Any] = _ok("availability", response)
        return result

    async def allocate_many(
        self, bodies: dict[str, dict[str, Any]]
    ) -> dict[str, dict[str, Any] | Refused]:
        """Allocates up to 100 orders (``{order_id: body}``) in one call, each under its
        key ``alloc:{order_id}`` as ``allocate`` would; per order id, the allocation or
        availability's refusal of that one."""
        response = await self.availability.request(
            "POST",
            "/availability/v1/allocations/batch",
            json={
                "allocations": [
                    {
                        "idempotency_key": f"alloc:{order_id}",
                        "allocation": {"order_id": order_id, **body},
                    }
                    for order_id, body in bodies.items()
                ]
            },
        )
        return _per_item("availability", response, list(bodies), "allocation")

    async def hold(self, hold_id: str) -> dict[str, Any] | None:
        response = await self.availability.request("GET", f"/availability/v1/holds/{hold_id}")
        if response.status_code == 404:
            return None
        result: dict[str, Any] = _ok("availability", response)
        return result

    async def convert_hold(self, hold_id: str, order_id: str) -> dict[str, Any]:
        response = await self.availability.request(
            "POST",
            f"/availability/v1/holds/{hold_id}/convert",
            json={"order_id": order_id},
            idempotency_key=f"convert:{order_id}",
        )
        result: dict[str, Any] = _ok("availability", response)
        return result

    async def allocation(self, order_id: str) -> dict[str, Any] | None:
        response = await self.availability.request(
            "GET", f"/availability/v1/allocations/{order_id}"
        )
        if response.status_code == 404:
            return None
        result: dict[str, Any] = _ok("availability", response)
        return result

    async def fill(self, order_id: str, key: str, body: dict[str, Any]) -> dict[str, Any]:
        response = await self.availability.request(
            "POST", f"/availability/v1/allocations/{order_id}/fill", json=body, idempotency_key=key
        )
        result: dict[str, Any] = _ok("availability", response)
        return result

    async def available_to_promise(self, skus: list[str]) -> dict[str, int]:
        """Each sku's available-to-promise over every location (up to 100 skus a call)."""
        found: dict[str, int] = {}
        for start in range(0, len(skus), 100):
            some = skus[start : start + 100]
            response = await self.availability.request(
                "GET", "/availability/v1/items", params=[("sku", sku) for sku in some]
            )
            for item in _ok("availability", response)["items"]:
                found[str(item["sku"])] = int(item["available_to_promise"])
        return found

    async def fill_many(
        self, asks: list[tuple[str, str, dict[str, Any]]]
    ) -> dict[str, dict[str, Any] | Refused]:
        """Fills up to 100 orders' backorders ((order id, key, body) each, as ``fill``
        asks) in one call, in this order; per order id, the fill or availability's
        refusal of that one."""
        response = await self.availability.request(
            "POST",
            "/availability/v1/allocations/fills/batch",
            json={
                "fills": [
                    {"idempotency_key": key, "allocation_id": order_id, "fill": body}
                    for order_id, key, body in asks
                ]
            },
        )
        return _per_item("availability", response, [order_id for order_id, _, _ in asks], "fill")

    async def release_lines(self, order_id: str, key: str, body: dict[str, Any]) -> None:
        response = await self.availability.request(
            "POST",
            f"/availability/v1/allocations/{order_id}/line-releases",
            json=body,
            idempotency_key=key,
        )
        _ok("availability", response)

    async def release(self, order_id: str) -> None:
        response = await self.availability.request(
            "POST",
            f"/availability/v1/allocations/{order_id}/release",
            idempotency_key=f"release:{order_id}",
        )
        if response.status_code == 404:
            return  # nothing was ever allocated
        _ok("availability", response)

    # -- WMS -------------------------------------------------------------------
    async def create_fulfillment(
        self, release_id: str, order_id: str, warehouse_id: str, lines: list[dict[str, Any]]
    ) -> dict[str, Any]:
        response = await self.wms.request(
            "POST",
            "/wms/v1/fulfillment-orders",
            json={"order_id": order_id, "warehouse_id": warehouse_id, "lines": lines},
            idempotency_key=f"fo:{release_id}",
        )
        result: dict[str, Any] = _ok("wms", response)
        return result

    async def create_fulfillments(
        self, releases: list[tuple[str, str, str, list[dict[str, Any]]]]
    ) -> dict[str, dict[str, Any]]:
        """Up to 100 releases, each (release id, order id, warehouse id, lines), in one
        call, each under the key of ``create_fulfillment`` (``fo:{release_id}``: a release
        sent either way is replayed, never made twice). Per release id, the WMS's result:
        ``fulfillment_order`` (made or replayed), else that release's ``refusal``. The
        batch refused as a whole raises ``Refused``; the WMS away, ``ProblemError``."""
        response = await self.wms.request(
            "POST",
            "/wms/v1/fulfillment-orders/batch",
            json={
                "fulfillment_orders": [
                    {
                        "key": f"fo:{release_id}",
                        "order_id": order_id,
                        "warehouse_id": warehouse_id,
                        "lines": lines,
                    }
                    for release_id, order_id, warehouse_id, lines in releases
                ]
            },
        )
        answer = _ok("wms", response)
        return {str(result["key"]).removeprefix("fo:"): result for result in answer["results"]}

    async def fulfillment(self, fulfillment_order_id: str) -> dict[str, Any] | None:
        response = await self.wms.request(
            "GET", f"/wms/v1/fulfillment-orders/{fulfillment_order_id}"
        )
        if response.status_code == 404:
            return None
        result: dict[str, Any] = _ok("wms", response)
        return result

    async def put_away(
        self, fulfillment_order_id: str, key: str, lines: list[dict[str, Any]]
    ) -> dict[str, Any]:
        response = await self.wms.request(
            "POST",
            f"/wms/v1/fulfillment-orders/{fulfillment_order_id}/put-aways",
            json={"lines": lines},
            idempotency_key=key,
        )
        result: dict[str, Any] = _ok("wms", response)
        return result

    async def cancel_fulfillment_lines(
        self, fulfillment_order_id: str, key: str, lines: list[dict[str, Any]]
    ) -> None:
        response = await self.wms.request(
            "POST",
            f"/wms/v1/fulfillment-orders/{fulfillment_order_id}/line-cancellations",
            json={"lines": lines},
            idempotency_key=key,
        )
        _ok("wms", response)
