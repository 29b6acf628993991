"""The platform's own service clients follow the release: a data directory created by
an earlier version gets the scopes a service now needs at the next start."""

from __future__ import annotations

from pathlib import Path

import pytest

from tally.bootstrap import SERVICE_CLIENT_SCOPES, _registry, ensure_clients


def test_a_service_client_from_an_earlier_release_is_granted_what_it_now_needs(
    tmp_path: Path,
) -> None:
    first = ensure_clients(tmp_path)
    client_id = first["services"]["order_to_ship"]["client_id"]
    registry = _registry(tmp_path)
    # As an earlier release registered it: no erp:write (the sales-order sync's).
    assert registry.regrant(client_id, ["erp:read", "wms:write"], ["erp", "wms"])
    assert "erp:write" not in registry.get(client_id).scopes
    again = ensure_clients(tmp_path)
    assert again["services"]["order_to_ship"] == first["services"]["order_to_ship"]
    record = registry.get(client_id)
    assert sorted(record.scopes) == sorted(SERVICE_CLIENT_SCOPES["order_to_ship"].split())
    assert set(record.allowed_apis) == {"erp", "availability", "wms"}


def test_a_client_bound_to_a_customer_cannot_be_regranted_staff_scopes(tmp_path: Path) -> None:
    registry = _registry(tmp_path)
    client_id, _ = registry.create("partner", ["orders:write"], customer_id="CUST-1")
    with pytest.raises(ValueError, match="bound to a customer"):
        registry.regrant(client_id, ["orders:admin"], ["orders"])
    assert registry.get(client_id).scopes == ("orders:write",)
    assert registry.regrant("cli_unknown", ["orders:read"], ["orders"]) is False
