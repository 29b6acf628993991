"""Helpers of the ERP's money tests: a sales order booked, a shipment's goods issue
posted, invoices, credit notes and payments, through the API."""

from __future__ import annotations

import itertools
from typing import Any

from litestar.testing import TestClient

from tests.support.service import post

_keys = itertools.count(1)


def usd(amount: int, currency: str = "USD") -> dict[str, Any]:
    return {"amount_minor": amount, "currency": currency}


def key(prefix: str = "k") -> str:
    return f"{prefix}-{next(_keys)}"


def customer(
    client: TestClient[Any],
    customer_id: str = "CUST-A",
    *,
    currency: str = "USD",
    terms: str = "net30",
) -> None:
    body = {
        "customer_id": customer_id,
        "name": customer_id,
        "credit_limit": usd(10**9, currency),
        "payment_terms": terms,
    }
    created = client.post("/erp/v1/customers", json=body)
    assert created.status_code == 201, created.text


def book(
    client: TestClient[Any],
    order_id: str,
    lines: list[tuple[str, int, int]],
    *,
    customer_id: str = "CUST-A",
    currency: str = "USD",
    version: int = 1,
) -> dict[str, Any]:
    """Books a sales order: ``lines`` (sku, quantity, unit price)."""
    body = {
        "customer_id": customer_id,
        "currency": currency,
        "version": version,
        "status": "open",
        "lines": [
            {"sku": s, "quantity": q, "cancelled": 0, "unit_price_minor": p} for s, q, p in lines
        ],
    }
    response = client.put(f"/erp/v1/sales-orders/{order_id}", json=body)
    assert response.status_code == 200, response.text
    return dict(response.json())


def goods_issue(
    client: TestClient[Any], shipment_id: str, lines: list[tuple[str, int]], warehouse: str = "W1"
) -> None:
    """Posts the shipment's goods issue (``lines``: sku, units shipped)."""
    body = {
        "kind": "goods_issue",
        "reference": shipment_id,
        "warehouse_id": warehouse,
        "lines": [{"sku": s, "quantity_delta": -q} for s, q in lines],
    }
    response = post(client, "/erp/v1/inventory/postings", body, key=f"gi-{shipment_id}")
    assert response.status_code == 201, response.text


def invoice_body(
    order_id: str,
    shipment_id: str,
    lines: list[tuple[str, int, int]] | list[tuple[str, int, int, int]],
    *,
    customer_id: str = "CUST-A",
    currency: str = "USD",
) -> dict[str, Any]:
    """``lines``: (sku, quantity, unit price[, tax])."""
    out = []
    for line in lines:
        sku, quantity, price = line[0], line[1], line[2]
        body: dict[str, Any] = {
            "sku": sku,
            "quantity": quantity,
            "unit_price": usd(price, currency),
        }
        if len(line) > 3:
            body["tax"] = usd(line[3], currency)
            if line[3]:
                body["tax_code"] = "VAT"
        out.append(body)
    return {
        "order_id": order_id,
        "shipment_id": shipment_id,
        "customer_id": customer_id,
        "lines": out,
    }


def invoice(client: TestClient[Any], body: dict[str, Any]) -> dict[str, Any]:
    created = post(client, "/erp/v1/invoices", body, key=key("inv"))
    assert created.status_code == 201, created.text
    return dict(created.json())


def shipped_invoice(
    client: TestClient[Any],
    order_id: str,
    shipment_id: str,
    lines: list[tuple[str, int, int, int]],
    *,
    customer_id: str = "CUST-A",
) -> dict[str, Any]:
    """Ships (posts the goods issue of) and invoices ``lines`` (sku, quantity, price,
    tax) of a booked order."""
    goods_issue(client, shipment_id, [(s, q) for s, q, _, _ in lines])
    return invoice(client, invoice_body(order_id, shipment_id, lines, customer_id=customer_id))


def credit_body(
    invoice_id: str,
    reference: str,
    lines: list[tuple[str, int, int, int]],
    *,
    reason: str = "return",
    currency: str = "USD",
) -> dict[str, Any]:
    """``lines``: (sku, quantity, net, tax)."""
    return {
        "invoice_id": invoice_id,
        "reason": reason,
        "reference": reference,
        "lines": [
            {"sku": s, "quantity": q, "amount": usd(n, currency), "tax": usd(t, currency)}
            for s, q, n, t in lines
        ],
    }


def pay_body(
    amount: int,
    *,
    customer_id: str = "CUST-A",
    applications: list[tuple[str, int]] | None = None,
    currency: str = "USD",
) -> dict[str, Any]:
    body: dict[str, Any] = {"customer_id": customer_id, "amount": usd(amount, currency)}
    if applications is not None:
        body["applications"] = [
            {"invoice_id": i, "amount": usd(a, currency)} for i, a in applications
        ]
    return body


def get(client: TestClient[Any], path: str, **params: Any) -> Any:
    response = client.get(path, params=params)
    assert response.status_code == 200, response.text
    return response.json()


def balance(client: TestClient[Any], customer_id: str = "CUST-A") -> dict[str, Any]:
    return dict(get(client, f"/erp/v1/customers/{customer_id}/balance"))


def snapshot(client: TestClient[Any]) -> tuple[Any, ...]:
    """Every money document, to show a refusal wrote nothing."""
    return (
        get(client, "/erp/v1/invoices", limit=500)["items"],
        get(client, "/erp/v1/credit-notes", limit=500)["items"],
        get(client, "/erp/v1/payments", limit=500)["items"],
    )
