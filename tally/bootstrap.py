"""First-start credentials: one internal client per calling service and the demo client.

Their secrets are kept in ``<data_dir>/secrets/clients.json`` (mode 0600), the way a
container platform hands a service its credentials; the gateway stores only hashes.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from shared.settings import database_url_for
from shared.topology import ALL_SCOPES

SERVICE_CLIENT_SCOPES: dict[str, str] = {
    "order_to_ship": "erp:read erp:write inventory:read inventory:write wms:read wms:write",
    "billing": "orders:read erp:read erp:write",
    # Reconciliation reads both books; the warehouse's movements are posted to the ERP.
    "availability": "erp:read erp:write wms:read",
}
SERVICE_CLIENT_APIS: dict[str, str] = {
    "order_to_ship": "erp availability wms",
    "billing": "orders erp",
    "availability": "erp wms",
}
DEMO_CLIENT_NAME = "demo"


def secrets_path(data_dir: Path) -> Path:
    return data_dir / "secrets" / "clients.json"


def _registry(data_dir: Path) -> Any:
    from gateway.clients.registry import ClientRegistry  # the operator tool may use it

    return ClientRegistry(database_url_for("gateway", data_dir))


def ensure_clients(data_dir: Path) -> dict[str, Any]:
    """Creates what is missing and returns {"services": {...}, "demo": {...}}."""
    path = secrets_path(data_dir)
    known: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
    known.setdefault("services", {})
    changed = False
    registry = None
    for service, scopes in SERVICE_CLIENT_SCOPES.items():
        if service in known["services"]:
            # A release that gives a service more to do grants its client more.
            registry = registry or _registry(data_dir)
            _keep_granted(registry, known["services"][service]["client_id"], service)
            continue
        registry = registry or _registry(data_dir)
        client_id, secret = registry.create(
            f"service:{service}",
            scopes.split(),
            tier="internal",
            allowed_apis=SERVICE_CLIENT_APIS[service].split(),
        )
        known["services"][service] = {"client_id": client_id, "client_secret": secret}
        changed = True
    if "demo" not in known:
        registry = registry or _registry(data_dir)
        client_id, secret = registry.create(DEMO_CLIENT_NAME, list(ALL_SCOPES), tier="gold")
        known["demo"] = {"client_id": client_id, "client_secret": secret}
        changed = True
    if changed:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600, exist_ok=True)
        os.chmod(path, 0o600)
        path.write_text(json.dumps(known, indent=2))
    return known


def _keep_granted(registry: Any, client_id: str, service: str) -> None:
    record = registry.get(client_id)
    wanted = sorted(SERVICE_CLIENT_SCOPES[service].split())
    apis = sorted(SERVICE_CLIENT_APIS[service].split())
    if record is not None and (
        sorted(record.scopes) != wanted or sorted(record.allowed_apis) != apis
    ):
        registry.regrant(client_id, wanted, apis)


def service_credentials_env(clients: dict[str, Any]) -> dict[str, str]:
    env: dict[str, str] = {}
    for service, creds in clients["services"].items():
        env[f"TALLY_{service.upper()}_CLIENT_ID"] = creds["client_id"]
        env[f"TALLY_{service.upper()}_CLIENT_SECRET"] = creds["client_secret"]
    return env
