"""The refusals availability's repositories and planners raise: each names its answer
(``shared.refusals``), so no repository picks an HTTP status."""

from __future__ import annotations

from shared.refusals import CatalogRefusal


class DuplicateAllocation(CatalogRefusal):
    status, slug = 409, "duplicate-allocation"


class DuplicateHold(CatalogRefusal):
    status, slug = 409, "duplicate-hold"


class InvalidRule(CatalogRefusal):
    status, slug = 422, "invalid-rule"


class DuplicateRule(CatalogRefusal):
    status, slug = 409, "duplicate-rule"
