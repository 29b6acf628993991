"""The services of the platform, their public API names and default ports.

This is the one table the CLI, the gateway and the service settings read, so a
port or an API name is changed in one place.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ServiceSpec:
    name: str  # package-level service name, used for env vars and data files
    api: str | None  # first path segment it serves (None: the gateway)
    port: int
    app_factory: str  # import string of create_app, so callers never import the package
    title: str


SERVICES: tuple[ServiceSpec, ...] = (
    ServiceSpec("erp", "erp", 8101, "system_apis.erp.app:create_app", "ERP system API"),
    ServiceSpec("wms", "wms", 8102, "system_apis.wms.app:create_app", "WMS system API"),
    ServiceSpec(
        "availability",
        "availability",
        8201,
        "process_apis.availability.app:create_app",
        "Availability process API",
    ),
    ServiceSpec(
        "order_to_ship",
        "orders",
        8202,
        "process_apis.order_to_ship.app:create_app",
        "Order-to-ship process API",
    ),
    ServiceSpec(
        "billing", "billing", 8203, "process_apis.billing.app:create_app", "Billing process API"
    ),
    ServiceSpec(
        "portal", "graphql", 8301, "experience_apis.portal.app:create_app", "Portal GraphQL"
    ),
    ServiceSpec("gateway", None, 8000, "gateway.app:create_app", "Gateway"),
)

BY_NAME: dict[str, ServiceSpec] = {spec.name: spec for spec in SERVICES}
BY_API: dict[str, ServiceSpec] = {spec.api: spec for spec in SERVICES if spec.api}

# Audience a token must carry to reach a service: the service's API name.
ALL_AUDIENCES: tuple[str, ...] = tuple(spec.api for spec in SERVICES if spec.api)

ALL_SCOPES: tuple[str, ...] = (
    "erp:read",
    "erp:write",
    "wms:read",
    "wms:write",
    "inventory:read",
    "inventory:write",
    "inventory:admin",
    "orders:read",
    "orders:write",
    "orders:admin",
    "billing:read",
    "billing:write",
    "billing:admin",
    "portal",
    "portal:staff",
    "introspect",
    "admin",
)

RATE_TIERS: tuple[str, ...] = ("bronze", "silver", "gold", "internal")
