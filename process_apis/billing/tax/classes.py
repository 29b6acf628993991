"""The items' tax classes, read from the ERP (``GET /erp/v1/items/{sku}``) and kept
for a while: a class changes rarely, and an invoice should not cost one call per line."""

from __future__ import annotations

import time

from shared.http import Downstream
from shared.problems import ProblemError

DEFAULT_CLASS = "standard"


class ItemTaxClasses:
    def __init__(self, erp: Downstream, *, ttl_seconds: float = 300.0) -> None:
        self.erp = erp
        self.ttl = ttl_seconds
        self._known: dict[str, tuple[str, float]] = {}

    async def of(self, sku: str) -> str:
        now = time.monotonic()
        known = self._known.get(sku)
        if known is not None and known[1] > now:
            return known[0]
        response = await self.erp.request("GET", f"/erp/v1/items/{sku}")
        if response.status_code == 404:
            # The ERP refuses to invoice an unknown item anyway: the standard class
            # keeps the refusal where it belongs.
            return DEFAULT_CLASS
        if not response.is_success:
            raise ProblemError(
                502, "erp-error", f"ERP answered {response.status_code} for item {sku}"
            )
        tax_class = str(response.json().get("tax_class") or DEFAULT_CLASS)
        self._known[sku] = (tax_class, now + self.ttl)
        return tax_class
