"""The catalog as a customer sees it: each item with its list price and the price the
customer pays (its own price when the ERP has one, else the list price)."""

from __future__ import annotations

from typing import Literal

import msgspec

from shared.models import Money


class CatalogItem(msgspec.Struct):
    sku: str
    name: str
    base_uom: str
    tax_class: str
    list_price: Money
    price: Money  # the customer's price if it has one, else the list price
    price_source: Literal["customer", "list"] = "list"
