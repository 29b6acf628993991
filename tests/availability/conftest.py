from __future__ import annotations

from tests.support.service import service_fixtures

# Staff (unbound) with the administration scope: most tests configure stock.
_embedded_defaults, settings, client = service_fixtures(
    "availability", "inventory:read inventory:write inventory:admin"
)
