"""The client registry: hashed secrets, validation, and changes seen across connections."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from gateway.clients.registry import ClientRegistry, clients_table, sync_url
from gateway.oauth.token_store import TokenStore


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


@pytest.mark.parametrize(
    "kwargs",
    [{"scopes": "orders:read erp:read"}, {"scopes": "orders:read", "allowed_apis": "orders wms"}],
)
def test_a_client_bound_to_a_customer_gets_no_system_api(
    registry: ClientRegistry, kwargs: dict[str, str]
) -> None:
    with pytest.raises(ValueError, match="system APIs"):
        registry.create("acme", customer_id="CUST-A", **kwargs)
    assert registry.list() == []


@pytest.mark.parametrize(
    "scopes", ["inventory:read inventory:admin", "admin", "orders:read portal:staff"]
)
def test_a_client_bound_to_a_customer_gets_no_administration_or_staff_scope(
    registry: ClientRegistry, scopes: str
) -> None:
    with pytest.raises(ValueError, match="administration or staff scopes"):
        registry.create("acme", scopes, customer_id="CUST-A")
    assert registry.list() == []
    client_id, _ = registry.create("operator", scopes)  # staff (unbound) may hold them
    record = registry.get(client_id)
    assert record is not None
    assert set(scopes.split()) <= set(record.scopes)


def test_a_partner_client_bound_to_a_customer_keeps_its_transaction_scopes(
    registry: ClientRegistry,
) -> None:
    partner = "orders:read orders:write inventory:read inventory:write billing:read portal"
    client_id, _ = registry.create("acme", partner, customer_id="CUST-A")
    record = registry.get(client_id)
    assert record is not None
    assert record.scopes == tuple(partner.split())
    assert record.customer_id == "CUST-A"


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


def test_rotate_secret_replaces_the_hash_and_shows_the_new_secret_once(
    registry: ClientRegistry,
) -> None:
    client_id, old = registry.create("acme", "erp:read")
    new = registry.rotate_secret(client_id)
    assert new is not None
    assert new != old
    record = registry.get(client_id)
    assert record is not None
    assert record.check_secret(new)
    assert not record.check_secret(old)
    assert registry.rotate_secret("cli_nobody") is None


def test_a_key_client_has_no_secret_to_rotate(registry: ClientRegistry) -> None:
    from joserfc.jwk import ECKey

    public = ECKey.generate_key("P-256", private=True).as_dict(private=False)
    client_id = registry.create_with_keys("edi", "orders:read", json.dumps(public))
    record = registry.get(client_id)
    assert record is not None
    assert record.auth_method == "private_key_jwt"
    assert record.jwks is not None
    assert "d" not in record.jwks["keys"][0]
    assert not record.check_secret("")
    with pytest.raises(ValueError, match="no secret"):
        registry.rotate_secret(client_id)


def test_disable_revokes_exactly_the_clients_live_tokens(tmp_path: Path) -> None:
    registry = ClientRegistry(f"sqlite:///{tmp_path / 'gateway.db'}")
    store = TokenStore(registry.engine)
    leaver, _ = registry.create("leaver", "erp:read")
    stayer, _ = registry.create("stayer", "erp:read")
    now = int(time.time())
    assert store.record_issued("live", leaver, now + 600)
    assert store.record_issued("old", leaver, now - 600)
    assert store.record_issued("other", stayer, now + 600)
    assert registry.disable(leaver)
    revoked = {item[1] for item in store.revocations_after(0).items}
    assert revoked == {"live"}
    # a token being issued as the client is disabled is not handed out
    assert store.record_issued("late", leaver, now + 600) is False
    assert not store.is_revoked("other")


def test_rotate_secret_can_revoke_the_old_tokens(tmp_path: Path) -> None:
    registry = ClientRegistry(f"sqlite:///{tmp_path / 'gateway.db'}")
    store = TokenStore(registry.engine)
    client_id, _ = registry.create("leaky", "erp:read")
    assert store.record_issued("t1", client_id, int(time.time()) + 600)
    registry.rotate_secret(client_id)
    assert not store.is_revoked("t1")
    registry.rotate_secret(client_id, revoke_tokens=True)
    assert store.is_revoked("t1")


def test_assertion_ids_are_single_use_per_client(tmp_path: Path) -> None:
    registry = ClientRegistry(f"sqlite:///{tmp_path / 'gateway.db'}")
    store = TokenStore(registry.engine)
    exp = int(time.time()) + 60
    assert store.use_assertion_jti("cli_a", "j1", exp) is True
    assert store.use_assertion_jti("cli_a", "j1", exp) is False
    assert store.use_assertion_jti("cli_b", "j1", exp) is True


def test_prune_forgets_only_what_has_expired(tmp_path: Path) -> None:
    registry = ClientRegistry(f"sqlite:///{tmp_path / 'gateway.db'}")
    store = TokenStore(registry.engine)
    now = int(time.time())
    store.revoke("gone", "c", now - 3600, "test")
    store.revoke("live", "c", now + 600, "test")
    store.use_assertion_jti("c", "old", now - 3600)
    removed = store.prune()
    assert removed["oauth_revocations"] == 1
    assert removed["oauth_assertion_jtis"] == 1
    assert [item[1] for item in store.revocations_after(0).items] == ["live"]


def test_a_registry_from_before_private_key_jwt_is_upgraded(tmp_path: Path) -> None:
    path = tmp_path / "gateway.db"
    with sqlite3.connect(path) as conn:
        conn.execute(
            "CREATE TABLE oauth_clients (client_id VARCHAR(64) PRIMARY KEY, name VARCHAR(200) "
            "NOT NULL, secret_hash VARCHAR(255) NOT NULL, scopes TEXT NOT NULL, allowed_apis "
            "TEXT NOT NULL, customer_id VARCHAR(100), tier VARCHAR(20) NOT NULL, disabled "
            "BOOLEAN NOT NULL, created_at DATETIME NOT NULL)"
        )
        conn.execute(
            "INSERT INTO oauth_clients VALUES ('cli_old', 'old', 'x', 'erp:read', 'erp', NULL, "
            "'bronze', 0, '2026-01-01 00:00:00')"
        )
    registry = ClientRegistry(f"sqlite:///{path}")
    record = registry.get("cli_old")
    assert record is not None
    assert record.auth_method == "client_secret"
    assert registry.create("new", "erp:read")[0].startswith("cli_")
