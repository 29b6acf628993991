"""The calls this service makes to the ERP, availability and the WMS (contract 0002),
mapped onto three outcomes: an answer, a refusal the saga compensates, or a
``Refusal(503)`` from ``Downstream`` when the partner is unreachable (transient:
the order stays ``pending`` and the resumer retries)."""

from __future__ import annotations

import logging
from typing import Any

import httpx

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

    def __init__(self, service: str, response: httpx.Response) -> None:
        self.service = service
        self.status_code = response.status_code
        self.problem = _problem(response)
        self.type = str(self.problem.get("type", ""))
        self.detail = str(self.problem.get("detail") or f"{service} answered {self.status_code}")
        super().__init__(f"{service}: {self.status_code} {self.type} {self.detail}")

    @property
    def extra(self) -> dict[str, Any]:
        """The partner's problem members beyond the standard ones (e.g. per-line shortfalls)."""
        return {k: v for k, v in self.problem.items() if k not in _PROBLEM_KEYS}


def _ok(service: str, response: httpx.Response) -> Any:
    if response.is_success:
        return response.json()
    raise Refused(service, response)


class Partners:
    def __init__(self, runtime: Runtime) -> None:
        self.erp: Downstream = runtime.downstream("erp")
        self.availability: Downstream = runtime.downstream("availability")
        self.wms: Downstream = runtime.downstream("wms")

    # -- ERP: read-only checks ---------------------------------------------
    async def customer(self, customer_id: str) -> dict[str, Any] | None:
        response = await self.erp.request("GET", f"/erp/v1/customers/{customer_id}")
        if response.status_code == 404:
            return None
        result: dict[str, Any] = _ok("erp", response)
        return result

    async def items(self, skus: list[str]) -> dict[str, dict[str, Any]]:
        params = [("sku", sku) for sku in skus] + [("limit", str(len(skus)))]
        body = _ok("erp", await self.erp.request("GET", "/erp/v1/items", params=params))
        return {item["sku"]: item for item in body["items"]}

    # -- availability --------------------------------------------------------
    async def allocate(
        self,
        order_id: str,
        channel: str,
        policy: str,
        lines: list[tuple[str, int]],
        customer_id: str,
    ) -> dict[str, Any]:
        response = await self.availability.request(
            "POST",
            "/availability/v1/allocations",
            json={
                "order_id": order_id,
                "channel": channel,
                "policy": policy,
                "lines": [{"sku": sku, "quantity": quantity} for sku, quantity in lines],
                # The allocation is the order's customer's: bound clients see their own.
                "customer_id": customer_id,
            },
            idempotency_key=f"alloc:{order_id}",
        )
        result: dict[str, Any] = _ok("availability", response)
        return result

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
        self, order_id: str, warehouse_id: str, lines: list[tuple[str, int]]
    ) -> dict[str, Any]:
        response = await self.wms.request(
            "POST",
            "/wms/v1/fulfillment-orders",
            json={
                "order_id": order_id,
                "warehouse_id": warehouse_id,
                "lines": [{"sku": sku, "quantity": quantity} for sku, quantity in lines],
            },
            idempotency_key=f"fo:{order_id}:{warehouse_id}",
        )
        result: dict[str, Any] = _ok("wms", response)
        return result

    async def cancel_fulfillment(self, fulfillment_order_id: str) -> None:
        response = await self.wms.request(
            "POST",
            f"/wms/v1/fulfillment-orders/{fulfillment_order_id}/cancel",
            idempotency_key=f"cancel:{fulfillment_order_id}",
        )
        if response.status_code == 404:
            log.warning("fulfillment order %s is unknown to the WMS", fulfillment_order_id)
            return
        _ok("wms", response)
