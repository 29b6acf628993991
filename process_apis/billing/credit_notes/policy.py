"""Which returned units are credited (decision 0034).

A disposition says what became of a returned unit, and so why it came back:

- ``restock``: it came back sellable (the customer returned it as allowed): credited;
- ``damaged``: damaged in the carrier's hands: credited (the claim against the carrier
  is the distributor's, not the customer's);
- ``return_to_vendor``: defective from the supplier: credited;
- ``scrap``: ruined by the customer (misuse): not credited.

Units still in quality control carry no disposition yet and are not in a
``return.dispositioned`` event: they are credited, or not, when released.
"""

from __future__ import annotations

from collections.abc import Iterable

from shared.events.catalog import DispositionedLine

CREDITED = frozenset({"restock", "damaged", "return_to_vendor"})
NOT_CREDITED = frozenset({"scrap"})


def creditable_units(lines: Iterable[DispositionedLine]) -> dict[str, int]:
    """Units to credit per sku."""
    units: dict[str, int] = {}
    for line in lines:
        if line.disposition in CREDITED and line.quantity > 0:
            units[line.sku] = units.get(line.sku, 0) + line.quantity
    return units
