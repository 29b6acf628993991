"""The refusals availability's repositories and planners raise: each names its answer
(``shared.refusals``), so no repository picks an HTTP status."""

from __future__ import annotations

from shared.refusals import CatalogRefusal, Refusal


class DuplicateAllocation(CatalogRefusal):
    status, slug = 409, "duplicate-allocation"


class DuplicateHold(CatalogRefusal):
    status, slug = 409, "duplicate-hold"


class InvalidRule(CatalogRefusal):
    status, slug = 422, "invalid-rule"


class DuplicateRule(CatalogRefusal):
    status, slug = 409, "duplicate-rule"


def stale_bucket(
    slug: str, bucket: str, sku: str, location_id: str, expected: int, current: int
) -> Refusal:
    """A compare-and-set write (a count, a safety stock) whose expected value of
    ``bucket`` is no longer the stored one: 409, nothing changed."""
    return Refusal(
        409,
        slug,
        f"{bucket} of {sku} at {location_id} is {current}, not {expected}; nothing was changed.",
        extra={f"current_{bucket}": current, f"expected_{bucket}": expected},
    )
