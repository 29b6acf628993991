"""The client registry: hashed secrets, validation, and changes seen across connections."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from gateway.clients.registry import ClientRegistry, clients_table, sync_url


@pytest.fixture
def registry(tmp_path: Path) -> ClientRegistry:
    return ClientRegistry(f"sqlite+aiosqlite:///{tmp_path / 'gateway.db'}")


def test_secret_is_stored_only_as_an_argon2id_hash(registry: ClientRegistry) -> None:
    client_id, secret = registry.create("acme", "orders:read", customer_id="CUST-A")
    assert client_id.startswith("cli_")
    assert len(secret) >= 43
    with registry.engine.connect() as conn:
        row = conn.execute(sa.select(clients_table)).one()
    assert all(secret not in str(value) for value in row)
    assert row.secret_hash.startswith("$argon2id$")
    record = registry.get(client_id)
    assert record is not None
    assert record.check_secret(secret)
    assert not record.check_secret(secret + "x")


def test_create_records_what_was_asked(registry: ClientRegistry) -> None:
    client_id, _ = registry.create(
        "svc", ["erp:read", "wms:write"], tier="internal", allowed_apis=["erp", "wms"]
    )
    record = registry.get(client_id)
    assert record is not None
    assert record.scopes == ("erp:read", "wms:write")
    assert record.allowed_apis == ("erp", "wms")
    assert record.tier == "internal"
    assert record.customer_id is None
    assert not record.disabled
    assert record.created_at.tzinfo is not None


def test_audiences_default_to_the_apis_of_the_scopes(registry: ClientRegistry) -> None:
    portal_id, _ = registry.create("portal user", "portal orders:read")
    admin_id, _ = registry.create("admin", "admin")
    portal, admin = registry.get(portal_id), registry.get(admin_id)
    assert portal is not None
    assert admin is not None
    assert set(portal.allowed_apis) == {"graphql", "orders", "availability", "billing"}
    assert set(admin.allowed_apis) == {"erp", "wms", "availability", "orders", "billing", "graphql"}


@pytest.mark.parametrize(
    "kwargs",
    [
        {"scopes": "orders:read nope"},
        {"scopes": ""},
        {"scopes": "orders:read", "tier": "platinum"},
        {"scopes": "orders:read", "allowed_apis": "orders crm"},
    ],
)
def test_create_refuses_unknown_values(registry: ClientRegistry, kwargs: dict[str, str]) -> None:
    with pytest.raises(ValueError, match=r"unknown|needs"):
        registry.create("x", **kwargs)
    assert registry.list() == []


def test_disable_is_seen_by_another_registry_at_once(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'gateway.db'}"
    writer, reader = ClientRegistry(url), ClientRegistry(url)
    client_id, _ = writer.create("acme", "erp:read")
    first = reader.get(client_id)
    assert first is not None
    assert not first.disabled
    assert writer.disable(client_id) is True
    again = reader.get(client_id)
    assert again is not None
    assert again.disabled
    assert writer.disable("cli_nobody") is False
    assert [record.client_id for record in reader.list()] == [client_id]


def test_registry_urls() -> None:
    assert (
        sync_url("sqlite+aiosqlite:////var/tally/gateway.db") == "sqlite:////var/tally/gateway.db"
    )
    assert sync_url("sqlite:///x.db") == "sqlite:///x.db"
    with pytest.raises(ValueError, match="SQLite only"):
        sync_url("postgresql+asyncpg://tally@db/gateway")
