"""The read-only checks before an order is written: one line per sku, the customer
and every sku known to the ERP, prices in the customer's currency, and the order value
(sum of quantity x unit price) within the customer's credit limit."""

from __future__ import annotations

from collections import Counter

from process_apis.order_to_ship.flows.partners import Partners
from process_apis.order_to_ship.orders.schemas import OrderIn
from shared.refusals import Refusal


async def check_with_erp(partners: Partners, data: OrderIn) -> tuple[str, dict[str, int]]:
    """The order's currency and the unit price per sku, or a 422 problem."""
    skus = [line.sku for line in data.lines]
    duplicated = sorted(sku for sku, n in Counter(skus).items() if n > 1)
    if duplicated:
        raise Refusal(
            422,
            "duplicate-sku",
            f"Each sku may appear on one line only: {', '.join(duplicated)}.",
        )
    customer = await partners.customer(data.customer_id)
    if customer is None:
        raise Refusal(422, "unknown-customer", f"No customer {data.customer_id}.")
    items = await partners.items(skus)
    missing = [sku for sku in skus if sku not in items]
    if missing:
        raise Refusal(
            422,
            "unknown-sku",
            f"Unknown sku: {', '.join(missing)}.",
            extra={"skus": missing},
        )
    limit = customer["credit_limit"]
    currency = str(limit["currency"])
    foreign = [sku for sku in skus if items[sku]["unit_price"]["currency"] != currency]
    if foreign:
        raise Refusal(
            422,
            "currency-mismatch",
            f"Items priced in another currency than the customer's {currency}: "
            f"{', '.join(foreign)}.",
        )
    prices = {sku: int(items[sku]["unit_price"]["amount_minor"]) for sku in skus}
    value = sum(line.quantity * prices[line.sku] for line in data.lines)
    if value > int(limit["amount_minor"]):
        raise Refusal(
            422,
            "credit-limit-exceeded",
            f"The order value {value} {currency} exceeds the credit limit "
            f"{limit['amount_minor']} {currency} of customer {data.customer_id}.",
        )
    return currency, prices
