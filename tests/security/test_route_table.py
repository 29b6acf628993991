"""The route table (contracts/access.toml) is the platform's rule of who may do what,
and it is complete and true:

- every live route of every app (each service and the gateway) has an entry, every
  entry a live route, and each entry's scope is the route's ``requires(...)`` scope;
- a client bound to customer B, holding every scope a bound client can get, is
  refused as its entry says on every route that names a customer's object or is not
  for partners: 403 where it may never call, 404 exactly like an unknown id on A's
  objects (created first, so the 404 proves the object check), 403
  customer-not-permitted for a create naming A, filtered lists; and nothing changes;
- routes open to any bound client answer without A's data, public ones without a token.
"""

from __future__ import annotations

import re
import time
import tomllib
import uuid
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
from joserfc import jwt
from litestar import Litestar

from gateway.app import create_app as create_gateway
from gateway.clients.registry import ClientRegistry
from gateway.oauth.keys import KeyStore
from shared.auth.litestar_auth import PUBLIC_PATHS, REQUIRED_SCOPE
from shared.settings import Settings, load_settings
from shared.topology import ALL_AUDIENCES, SERVICES
from tests.security.access_world import (
    CHANNEL,
    PARTNER_SCOPES,
    World,
    bound_token,
    build_world,
    http,
)
from tests.support.stack import Stack, ThreadServer
from tests.support.tokens import TestIssuer

pytestmark = pytest.mark.slow  # starts services as processes or a stack on real ports

TABLE = Path(__file__).resolve().parents[2] / "contracts" / "access.toml"
AUTH_KINDS = {"public", "bearer", "client"}
OTHER_CUSTOMER_BY_BOUND = {
    "never": {"refused"},
    "own": {
        "not_found",
        "not_found_each",
        "not_permitted",
        "not_permitted_each",
        "filtered",
        "refused",
    },
    "any": {"allowed"},
}
WRITE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
REFUSAL_TYPES = {"/problems/insufficient-scope", "/problems/internal-api"}
SYSTEM_SCOPE_PREFIXES = ("erp:", "wms:")
VOLATILE = {"as_of", "correlation_id", "instance", "detail"}


@dataclass(frozen=True)
class Entry:
    service: str
    method: str
    path: str
    auth: str
    scopes: tuple[str, ...]
    bound: str
    other_customer: str
    check: str

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.service, self.method, self.path)

    def __str__(self) -> str:
        return f"{self.service} {self.method} {self.path}"


def load_table() -> list[Entry]:
    raw = tomllib.loads(TABLE.read_text())
    return [
        Entry(
            service=service,
            method=method,
            path=row["path"],
            auth=row["auth"],
            scopes=tuple(row["scopes"]),
            bound=row["bound"],
            other_customer=row["other_customer"],
            check=row["check"],
        )
        for row in raw["route"]
        for service in row["services"]
        for method in row["methods"]
    ]


ENTRIES = load_table()


def entries(predicate: Callable[[Entry], bool]) -> list[Any]:
    """The entries driven over HTTP here (a WebSocket's refusals and reach are driven
    by its own tests: the portal's in tests/portal/test_subscriptions.py)."""
    return [pytest.param(e, id=str(e)) for e in ENTRIES if predicate(e) and e.method != "WEBSOCKET"]


# --- The table against the live routes ------------------------------------------------


@dataclass(frozen=True)
class LiveRoute:
    required_scope: str | None
    public: bool  # the bearer middleware does not run for it


def _template(path: str) -> str:
    """``/items/{sku:str}`` -> ``/items/{sku}``: the table names parameters only."""
    return re.sub(r"\{(\w+):[^}]+\}", r"{\1}", path)


def _is_public_path(path: str) -> bool:
    return any(re.search(pattern, path) for pattern in PUBLIC_PATHS)


def live_routes(app: Litestar) -> dict[tuple[str, str], LiveRoute]:
    found: dict[tuple[str, str], LiveRoute] = {}
    for route in app.routes:
        path = _template(route.path)
        handlers = getattr(route, "route_handlers", None)
        if handlers is None:  # WebSocket and mounted ASGI apps must be decided too
            kind = type(route).__name__.removesuffix("Route").upper()
            # A WebSocket handler checks the token itself (the portal's, in
            # connection_init) and names the scope it requires in its opt.
            single = getattr(route, "route_handler", None)
            scope = single.opt.get(REQUIRED_SCOPE) if single is not None else None
            found[(kind, path)] = LiveRoute(scope, False)
            continue
        for handler in handlers:
            methods = set(handler.http_methods) - {"OPTIONS"}  # CORS preflight
            if "GET" in methods:
                methods.discard("HEAD")  # Litestar's implicit HEAD of a GET
            for method in methods:
                public = _is_public_path(path) or bool(handler.opt.get("exclude_from_auth"))
                found[(method, path)] = LiveRoute(handler.opt.get(REQUIRED_SCOPE), public)
    return found


def _unwrap(app: Any) -> Litestar:
    """The gateway's Litestar app inside its ASGI middleware (correlation, metrics,
    router)."""
    while not isinstance(app, Litestar):
        app = app.app
    return app


def gateway_settings(data_dir: Path, urls: dict[str, str]) -> Settings:
    settings = load_settings("gateway", data_dir=data_dir)
    return msgspec.structs.replace(
        settings, service_urls={**settings.service_urls, **urls}, redis_url=None
    )


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[tuple[str, str], LiveRoute]]:
    """Every app's routes, built from the factories in shared.topology (not started)."""
    data_dir = tmp_path_factory.mktemp("route-walk")
    stack = Stack(data_dir, TestIssuer(), [s.name for s in SERVICES if s.api])
    apps: dict[str, Litestar] = {name: stack.app(name) for name in stack.wanted}
    apps["gateway"] = _unwrap(create_gateway(gateway_settings(data_dir, stack.urls)))
    assert set(apps) == {spec.name for spec in SERVICES}
    return {name: live_routes(app) for name, app in apps.items()}


def test_the_table_is_well_formed() -> None:
    keys = [e.key for e in ENTRIES]
    duplicates = {k for k in keys if keys.count(k) > 1}
    assert not duplicates, f"routes listed twice: {sorted(duplicates)}"
    services = {spec.name for spec in SERVICES}
    for e in ENTRIES:
        assert e.service in services, f"{e}: unknown service"
        assert e.auth in AUTH_KINDS, f"{e}: auth is one of {sorted(AUTH_KINDS)}"
        assert e.bound in OTHER_CUSTOMER_BY_BOUND, f"{e}: bound is never, own or any"
        assert e.other_customer in OTHER_CUSTOMER_BY_BOUND[e.bound], (
            f"{e}: a route bound={e.bound} answers another customer with one of "
            f"{sorted(OTHER_CUSTOMER_BY_BOUND[e.bound])}"
        )
        assert e.check.strip(), f"{e}: say which object check applies (or why none)"
        if e.auth == "public":
            assert not e.scopes and e.bound == "any", f"{e}: public means no scope"
        if e.auth == "bearer":
            assert len(e.scopes) == 1, f"{e}: a bearer route declares exactly one scope"


def test_every_live_route_has_an_entry_and_every_entry_a_live_route(
    live: dict[str, dict[tuple[str, str], LiveRoute]],
) -> None:
    listed = {e.key for e in ENTRIES}
    served = {(svc, method, path) for svc, routes in live.items() for method, path in routes}
    unlisted = sorted(served - listed)
    gone = sorted(listed - served)
    assert not unlisted, (
        "routes without an entry in contracts/access.toml (decide their scope, whether a "
        f"bound client may call them and the object check; see docs/access.md): {unlisted}"
    )
    assert not gone, f"entries of contracts/access.toml whose route no longer exists: {gone}"


def test_every_entry_declares_the_routes_own_scope(
    live: dict[str, dict[tuple[str, str], LiveRoute]],
) -> None:
    wrong = []
    for e in ENTRIES:
        route = live.get(e.service, {}).get((e.method, e.path))
        if route is None or e.service == "gateway":
            continue  # the gateway's routes check their credentials themselves
        declared = (route.required_scope,) if route.required_scope else ()
        if e.auth == "public" and not route.public:
            wrong.append(f"{e}: listed public, but the route requires a token")
        elif e.auth == "bearer" and route.public:
            wrong.append(f"{e}: listed with a scope, but the route is public")
        elif e.auth == "bearer" and declared != e.scopes:
            wrong.append(f"{e}: the table says {list(e.scopes)}, the route requires {declared}")
    assert not wrong, "\n".join(wrong)


# --- Driving the entries ----------------------------------------------------------


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    yield from build_world(tmp_path_factory.mktemp("route-table"), TestIssuer())


@dataclass(frozen=True)
class GatewayClients:
    url: str
    a_token: str  # a gateway token of a client bound to A
    a: tuple[str, str]  # (client_id, secret) of that client
    b: tuple[str, str]  # a client bound to B, every partner scope
    b_token: str
    resource_server: tuple[str, str]  # internal tier: may introspect
    database_url: str  # the gateway's registry
    b_customer_id: str
    data_dir: Path  # the gateway's signing keys
    issuer: str


def _gateway_token(url: str, creds: tuple[str, str]) -> str:
    issued = httpx.post(
        f"{url}/oauth/token", data={"grant_type": "client_credentials"}, auth=creds, timeout=20
    )
    assert issued.status_code == 200, issued.text
    return str(issued.json()["access_token"])


@pytest.fixture(scope="module")
def gateway(world: World, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayClients]:
    stack = world.stack
    settings = gateway_settings(tmp_path_factory.mktemp("route-table-gw"), stack.urls)
    registry = ClientRegistry(settings.database_url)
    try:
        a = registry.create("partner-a", PARTNER_SCOPES, customer_id=world.a.customer_id)
        b = registry.create("partner-b", PARTNER_SCOPES, customer_id=world.b_customer_id)
        rs = registry.create("resource-server", "introspect", tier="internal")
    finally:
        registry.close()
    with ThreadServer(create_gateway(settings)) as server:
        yield GatewayClients(
            server.url,
            _gateway_token(server.url, a),
            a,
            b,
            _gateway_token(server.url, b),
            rs,
            settings.database_url,
            world.b_customer_id,
            settings.data_dir,
            settings.issuer,
        )


def base_url(world: World, gateway: GatewayClients, entry: Entry) -> str:
    return gateway.url if entry.service == "gateway" else world.stack.urls[entry.service]


def path_values(world: World) -> dict[str, str]:
    """Every path parameter of the table, from A's real objects where it names one."""
    a = world.a
    return {
        "sku": world.sku,
        "order_id": a.open_order_id,
        "allocation_id": a.open_order_id,  # an order's allocation has the order's id
        "hold_id": a.hold_id,
        "invoice_id": a.invoice_id,
        "payment_id": a.payment_id,
        "credit_note_id": a.credit_note_id,
        "customer_id": a.customer_id,
        "fulfillment_order_id": a.fulfillment_order_id,
        "rule_id": world.rule_id,
        "channel": CHANNEL,
        "location_id": world.warehouse_id,
        "region": "REGION-TEST",
        "exception_id": "EXC-TEST",
        "purchase_order_id": "PO-TEST",
        "asn_id": "ASN-TEST",
        "receipt_id": "RCPT-TEST",
        "return_id": "RET-TEST",
        # A's RMA (the orders routes); the WMS's RMA routes refuse before any lookup.
        "rma_id": a.rma_id,
        "shipment_id": "SHP-TEST",  # system API routes: refused before any lookup
        "api": "orders",
        "version": "v1",
        "renderer": "swagger",
        "path": "openapi.yaml",
        "asset": "explorer.js",  # the portal explorer's files
    }


def fill(path: str, values: dict[str, str]) -> str:
    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        assert name in values, f"no test value for path parameter {{{name}}}: add to path_values"
        return values[name]

    return re.sub(r"\{(\w+)\}", value, path)


def send(
    client: httpx.Client,
    method: str,
    path: str,
    body: Any = None,
    params: dict[str, str] | None = None,
) -> httpx.Response:
    headers = {"Idempotency-Key": uuid.uuid4().hex} if method in WRITE_METHODS else {}
    if body is None and method in {"POST", "PUT", "PATCH"}:
        body = {}
    return client.request(method, path, json=body, headers=headers, params=params)


def assert_no_data_of_a(
    world: World, response: httpx.Response, entry: Entry, sent: Collection[str] = ()
) -> None:
    """None of A's identifiers in the answer, but for ``sent``: the ids B itself named
    in the path, which a 404's detail may quote back."""
    text = response.text
    if response.headers.get("content-type", "").startswith("application/problem+json"):
        problem = response.json()
        problem.pop("instance", None)  # the request's own path, as the caller sent it
        text = str(problem)
    leaked = [i for i in world.identifiers_of_a() if i in text and i not in sent]
    assert not leaked, f"{entry} showed customer B {leaked}: {text[:500]}"


def _stable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _stable(v) for k, v in value.items() if k not in VOLATILE}
    if isinstance(value, list):
        return [_stable(v) for v in value]
    return value


def snapshot(world: World) -> list[Any]:
    """What staff sees of A's objects, the stock and the configuration: a refused
    call must leave every one of these as it was."""
    a, sku = world.a, world.sku
    reads: list[tuple[str, str, dict[str, str]]] = [
        ("order_to_ship", "/orders/v1/orders", {"customer_id": a.customer_id}),
        ("order_to_ship", "/orders/v1/orders", {"customer_id": world.b_customer_id}),
        ("billing", "/billing/v1/invoices", {"customer_id": a.customer_id}),
        ("billing", "/billing/v1/payments", {"customer_id": a.customer_id}),
        ("billing", "/billing/v1/credit-notes", {"customer_id": a.customer_id}),
        ("availability", f"/availability/v1/items/{sku}", {}),
        ("availability", f"/availability/v1/items/{sku}/movements", {}),
        ("availability", f"/availability/v1/allocations/{a.open_order_id}", {}),
        ("availability", f"/availability/v1/holds/{a.hold_id}", {}),
        ("availability", "/availability/v1/channel-rules", {}),
        ("availability", "/availability/v1/locations", {}),
        ("availability", "/availability/v1/reconciliation/exceptions", {}),
        ("wms", "/wms/v1/fulfillment-orders", {"order_id": a.open_order_id}),
        ("wms", "/wms/v1/warehouses", {}),
        ("erp", f"/erp/v1/inventory/{sku}", {}),
        ("erp", "/erp/v1/invoices", {"order_id": a.shipped_order_id}),
        ("erp", "/erp/v1/purchase-orders", {}),
    ]
    taken = []
    for service, path, params in reads:
        with world.stack.client(service, "admin") as staff:
            answer = staff.get(path, params=params)
        taken.append((path, params, answer.status_code, _stable(answer.json())))
    return taken


def _problem(response: httpx.Response) -> dict[str, Any]:
    assert response.headers.get("content-type", "").startswith("application/problem+json"), (
        response.headers
    )
    body: dict[str, Any] = response.json()
    return body


# Request bodies for the routes whose refusal must come from the object check, not
# from a malformed body. ``target`` is the customer the body names.
def create_body(entry: Entry, world: World, target: str) -> dict[str, Any]:
    line = [{"sku": world.sku, "quantity": 1}]
    bodies: dict[str, dict[str, Any]] = {
        "/orders/v1/orders": {"customer_id": target, "channel": CHANNEL, "lines": line},
        "/availability/v1/allocations": {
            "order_id": f"ORD-PROBE-{uuid.uuid4().hex[:8]}",
            "customer_id": target,
            "channel": CHANNEL,
            "lines": line,
        },
        "/billing/v1/payments": {
            "customer_id": target,
            "amount": {"amount_minor": 100, "currency": "USD"},
        },
        "/availability/v1/holds": {
            "hold_id": f"HOLD-PROBE-{uuid.uuid4().hex[:8]}",
            "customer_id": target,
            "channel": CHANNEL,
            "lines": line,
            "ttl_seconds": 600,
        },
    }
    assert entry.path in bodies, f"{entry}: add the create's body to create_body"
    return bodies[entry.path]


def change_body(entry: Entry) -> Any:
    if entry.path.endswith("/convert"):
        return {"order_id": f"ORD-PROBE-{uuid.uuid4().hex[:8]}"}
    if entry.path.endswith("/returns") and entry.method == "POST":
        return {"lines": [{"sku": "PROBE", "quantity": 1}]}
    if entry.path.endswith("/line-cancellations"):
        return {"lines": [{"sku": "PROBE", "quantity": 1}]}
    if entry.path.endswith("/line-releases"):
        return {"reason": "probe", "lines": [{"sku": "PROBE", "cancel_backordered": 1}]}
    return None


def _refused(client: httpx.Client, world: World, entry: Entry) -> None:
    response = send(client, entry.method, fill(entry.path, path_values(world)))
    assert response.status_code == 403, f"{entry}: {response.status_code} {response.text[:300]}"
    assert _problem(response)["type"] in REFUSAL_TYPES, response.text
    assert_no_data_of_a(world, response, entry)


def _not_found(client: httpx.Client, world: World, entry: Entry) -> None:
    values = path_values(world)
    object_param = re.findall(r"\{(\w+)\}", entry.path)[-1]
    unknown = {**values, object_param: f"UNKNOWN-{uuid.uuid4().hex[:12]}"}
    body = change_body(entry)
    theirs = send(client, entry.method, fill(entry.path, values), body)
    nobodys = send(client, entry.method, fill(entry.path, unknown), body)
    assert theirs.status_code == 404, f"{entry}: {theirs.status_code} {theirs.text[:300]}"
    assert nobodys.status_code == 404, f"{entry}: unknown id gave {nobodys.text[:300]}"
    assert _stable(_problem(theirs)) == _stable(_problem(nobodys)), (
        f"{entry}: A's object and an unknown id must answer alike"
    )
    named = {values[name] for name in re.findall(r"\{(\w+)\}", entry.path)}
    assert_no_data_of_a(world, theirs, entry, sent=named)


def _not_permitted(client: httpx.Client, world: World, entry: Entry) -> None:
    answers = []
    for target in (world.a.customer_id, f"CUST-NOBODY-{uuid.uuid4().hex[:6]}"):
        body = create_body(entry, world, target)
        refused = send(client, entry.method, entry.path, body)
        assert refused.status_code == 403, f"{entry}: {refused.status_code} {refused.text[:300]}"
        problem = _problem(refused)
        assert problem["type"] == "/problems/customer-not-permitted", problem
        answers.append(
            {k: v for k, v in problem.items() if k not in {"instance", "correlation_id"}}
        )
        service, path, params = _what_a_create_would_write(body)
        with world.stack.client(service, "admin") as staff:
            written = staff.get(path, params=params)
        if not params:
            assert written.status_code == 404, f"{entry} wrote {path}: {written.text[:300]}"
        elif target != world.a.customer_id:  # A's orders are compared by the snapshot
            assert written.json()["items"] == [], f"{entry} wrote {written.text[:300]}"
    assert answers[0] == answers[1], "whether the other customer exists must stay unknown"


# A batch route's list field and its items' field holding the single create's body.
BATCH_FIELDS: dict[str, tuple[str, str]] = {
    "/orders/v1/orders/batch": ("orders", "order"),
    "/availability/v1/allocations/batch": ("allocations", "allocation"),
}


def _not_permitted_each(client: httpx.Client, world: World, entry: Entry) -> None:
    """A batch of creates: each item naming another customer (or an unknown one) is
    that item's 403 ``customer-not-permitted``, alike for both; nothing is written."""
    assert entry.path in BATCH_FIELDS, f"{entry}: add the batch's fields to BATCH_FIELDS"
    listed, field = BATCH_FIELDS[entry.path]
    single = replace(entry, path=entry.path.removesuffix("/batch"))
    targets = (world.a.customer_id, f"CUST-NOBODY-{uuid.uuid4().hex[:6]}")
    items = [
        {"idempotency_key": uuid.uuid4().hex, field: create_body(single, world, target)}
        for target in targets
    ]
    answer = send(client, entry.method, entry.path, {listed: items})
    assert answer.status_code == 200, f"{entry}: {answer.status_code} {answer.text[:300]}"
    results = answer.json()["results"]
    refusals = [result["refusal"] for result in results]
    assert [r["status"] for r in refusals] == [403, 403], refusals
    assert {r["type"] for r in refusals} == {"/problems/customer-not-permitted"}, refusals
    assert refusals[0]["detail"] == refusals[1]["detail"], "whether A exists must stay unknown"
    assert all(field not in result for result in results), answer.text
    for target, sent in zip(targets, items, strict=True):
        service, path, params = _what_a_create_would_write(sent[field])
        with world.stack.client(service, "admin") as staff:
            written = staff.get(path, params=params)
        if not params:
            assert written.status_code == 404, f"{entry} wrote {path}: {written.text[:300]}"
        elif target != world.a.customer_id:  # A's orders are compared by the snapshot
            assert written.json()["items"] == [], f"{entry} wrote {written.text[:300]}"


# A batch of changes: its list field, and its items' field naming the object.
BATCH_OBJECTS: dict[str, tuple[str, str]] = {
    "/availability/v1/allocations/fills/batch": ("fills", "allocation_id"),
}


def _not_found_each(client: httpx.Client, world: World, entry: Entry) -> None:
    """A batch of changes: the item naming A's object is that item's 404, the answer
    of the item naming an unknown id; nothing changes (the snapshot)."""
    assert entry.path in BATCH_OBJECTS, f"{entry}: add the batch's fields to BATCH_OBJECTS"
    listed, field = BATCH_OBJECTS[entry.path]
    theirs, unknown = path_values(world)[field], f"UNKNOWN-{uuid.uuid4().hex[:12]}"
    items = [{"idempotency_key": uuid.uuid4().hex, field: id_} for id_ in (theirs, unknown)]
    answer = send(client, entry.method, entry.path, {listed: items})
    assert answer.status_code == 200, f"{entry}: {answer.status_code} {answer.text[:300]}"
    results = answer.json()["results"]
    refusals = [result.get("refusal") or {} for result in results]
    assert [r.get("status") for r in refusals] == [404, 404], results
    assert refusals[0]["type"] == refusals[1]["type"], refusals
    assert refusals[0]["detail"].replace(theirs, unknown) == refusals[1]["detail"], refusals
    assert_no_data_of_a(world, answer, entry, sent={theirs})


def _what_a_create_would_write(body: dict[str, Any]) -> tuple[str, str, dict[str, str]]:
    """Where staff would see the object a refused create must not have made."""
    if "order_id" in body:
        return "availability", f"/availability/v1/allocations/{body['order_id']}", {}
    if "hold_id" in body:
        return "availability", f"/availability/v1/holds/{body['hold_id']}", {}
    if "amount" in body:  # a payment
        return "billing", "/billing/v1/payments", {"customer_id": str(body["customer_id"])}
    return "order_to_ship", "/orders/v1/orders", {"customer_id": str(body["customer_id"])}


FILTER_PARAMS: dict[str, list[Callable[[World], Any]]] = {
    "/orders/v1/orders": [
        lambda w: {},
        lambda w: {"customer_id": w.a.customer_id, "count": "true"},
        lambda w: [("order_id", w.a.open_order_id), ("order_id", w.a.shipped_order_id)],
        lambda w: {"sku": w.sku, "channel": CHANNEL},
    ],
    "/orders/v1/history": [
        lambda w: [("order_id", w.a.open_order_id), ("order_id", w.a.shipped_order_id)],
    ],
    "/orders/v1/returns": [
        lambda w: {},
        lambda w: {"customer_id": w.a.customer_id},
        lambda w: {"order_id": w.a.shipped_order_id, "count": "true"},
    ],
    "/billing/v1/invoices": [
        lambda w: {},
        lambda w: {"customer_id": w.a.customer_id},
        lambda w: {"order_id": w.a.shipped_order_id},
    ],
    "/billing/v1/payments": [
        lambda w: {},
        lambda w: {"customer_id": w.a.customer_id},
        lambda w: {"invoice_id": w.a.invoice_id},
    ],
    "/billing/v1/credit-notes": [
        lambda w: {},
        lambda w: {"customer_id": w.a.customer_id},
        lambda w: {"invoice_id": w.a.invoice_id},
    ],
}


# A list whose items do not name the customer: what the owner asks, and what of A's it
# must then see (default: ?customer_id=A, and A's id in the answer).
def _by_customer(world: World) -> tuple[Any, str]:
    return {"customer_id": world.a.customer_id}, world.a.customer_id


OWNER_QUERIES: dict[str, Callable[[World], tuple[Any, str]]] = {
    "/orders/v1/history": lambda w: ({"order_id": w.a.shipped_order_id}, w.a.shipped_order_id),
}


def _filtered(client: httpx.Client, world: World, entry: Entry) -> None:
    assert entry.path in FILTER_PARAMS, f"{entry}: add the list's filters to FILTER_PARAMS"
    for params in FILTER_PARAMS[entry.path]:
        listed = client.get(entry.path, params=params(world))
        assert listed.status_code == 200, f"{entry} {params(world)}: {listed.text[:300]}"
        assert_no_data_of_a(world, listed, entry)
    # The owner sees its objects through the same filters: the list is not just empty.
    a_token = bound_token(world.stack.issuer, world.a.customer_id)
    owner_query = OWNER_QUERIES.get(entry.path, _by_customer)
    params, shown = owner_query(world)
    with http(world.stack.urls[entry.service], a_token) as owner:
        own = owner.get(entry.path, params=params)
    assert own.status_code == 200 and shown in own.text, own.text[:300]


PROBES: dict[str, Callable[[httpx.Client, World, Entry], None]] = {
    "refused": _refused,
    "not_found": _not_found,
    "not_permitted": _not_permitted,
    "not_permitted_each": _not_permitted_each,
    "not_found_each": _not_found_each,
    "filtered": _filtered,
}


@pytest.mark.parametrize(
    "entry", entries(lambda e: e.auth == "bearer" and e.other_customer != "allowed")
)
def test_a_client_bound_to_another_customer_is_refused_and_changes_nothing(
    world: World, gateway: GatewayClients, entry: Entry
) -> None:
    before = snapshot(world) if entry.method in WRITE_METHODS else None
    token = (
        gateway.b_token
        if entry.service == "gateway"
        else bound_token(world.stack.issuer, world.b_customer_id)
    )
    with http(base_url(world, gateway, entry), token) as partner_b:
        PROBES[entry.other_customer](partner_b, world, entry)
    if before is not None:  # a read changes nothing by construction: writes are compared
        assert snapshot(world) == before, f"{entry}: a refused call changed something"


@pytest.mark.parametrize(
    "entry", entries(lambda e: e.other_customer == "not_found" and e.method == "GET")
)
def test_the_owner_reads_what_another_customer_gets_404_for(
    world: World, gateway: GatewayClients, entry: Entry
) -> None:
    """The 404 of the test above is the object check, not a missing object."""
    with http(
        base_url(world, gateway, entry), bound_token(world.stack.issuer, world.a.customer_id)
    ) as owner:
        own = owner.get(fill(entry.path, path_values(world)))
    assert own.status_code == 200, f"{entry}: the owner got {own.status_code} {own.text[:300]}"


def _gateway_signed(gw: GatewayClients, customer_id: str, scopes: str) -> str:
    """A token with the gateway's own signing key: what its registry would never issue."""
    keys = KeyStore.in_data_dir(gw.data_dir)
    keys.load()
    now = int(time.time())
    claims = {
        "iss": gw.issuer,
        "aud": list(ALL_AUDIENCES),
        "sub": "forged",
        "client_id": "forged",
        "customer_id": customer_id,
        "scope": scopes,
        "jti": uuid.uuid4().hex,
        "iat": now,
        "exp": now + 600,
    }
    header = {"alg": "ES256", "kid": keys.active.kid, "typ": "at+jwt"}
    return jwt.encode(header, claims, keys.active)


@pytest.mark.parametrize("entry", entries(lambda e: e.auth == "bearer" and e.bound == "never"))
def test_a_bound_token_claiming_the_routes_own_scope_is_still_refused(
    world: World, gateway: GatewayClients, entry: Entry
) -> None:
    """The registry never grants a bound client a system-API or administration scope;
    a token that claims one anyway (a registry bug, a stolen key) is refused by the
    route itself, for every id alike: internal-api on the system APIs (ADR 0014),
    insufficient_scope for administration (ADR 0021)."""
    before = snapshot(world) if entry.method in WRITE_METHODS else None
    scopes = " ".join(entry.scopes)
    token = (
        _gateway_signed(gateway, world.b_customer_id, scopes)
        if entry.service == "gateway"
        else bound_token(world.stack.issuer, world.b_customer_id, scopes=scopes)
    )
    with http(base_url(world, gateway, entry), token) as forged:
        response = send(forged, entry.method, fill(entry.path, path_values(world)))
    assert response.status_code == 403, f"{entry}: {response.status_code} {response.text[:300]}"
    expected = (
        "/problems/internal-api"
        if entry.scopes[0].startswith(SYSTEM_SCOPE_PREFIXES)
        else "/problems/insufficient-scope"
    )
    assert _problem(response)["type"] == expected, response.text
    assert_no_data_of_a(world, response, entry)
    if before is not None:
        assert snapshot(world) == before, f"{entry}: a refused call changed something"


ANY_BODIES: dict[tuple[str, str], Any] = {
    ("POST", "/graphql"): {"query": "{ __typename }"},
}
ANY_QUERIES: dict[tuple[str, str], Callable[[World], dict[str, str]]] = {
    ("GET", "/availability/v1/items"): lambda w: {"sku": w.sku},
    ("GET", "/availability/v2/items"): lambda w: {"sku": w.sku},
}


@pytest.mark.parametrize(
    "entry", entries(lambda e: e.auth == "bearer" and e.other_customer == "allowed")
)
def test_routes_open_to_any_bound_client_show_nothing_of_another_customer(
    world: World, gateway: GatewayClients, entry: Entry
) -> None:
    token = bound_token(world.stack.issuer, world.b_customer_id)
    body = ANY_BODIES.get((entry.method, entry.path))
    query_of = ANY_QUERIES.get((entry.method, entry.path))
    query = query_of(world) if query_of else None
    with http(base_url(world, gateway, entry), token) as partner_b:
        path = fill(entry.path, path_values(world))
        response = send(partner_b, entry.method, path, body, params=query)
    assert response.status_code == 200, f"{entry}: {response.status_code} {response.text[:300]}"
    assert_no_data_of_a(world, response, entry)


@pytest.mark.parametrize("entry", entries(lambda e: e.auth == "public"))
def test_public_routes_answer_without_a_token(
    world: World, gateway: GatewayClients, entry: Entry
) -> None:
    with http(base_url(world, gateway, entry)) as anonymous:
        response = anonymous.get(fill(entry.path, path_values(world)))
    assert response.status_code not in (401, 403), f"{entry}: {response.text[:300]}"
    assert response.status_code < 500, f"{entry}: {response.status_code} {response.text[:300]}"
    assert_no_data_of_a(world, response, entry)


# --- The gateway's OAuth endpoints: the client authenticates itself ------------------


def _introspect(url: str, creds: tuple[str, str], token: str) -> httpx.Response:
    return httpx.post(f"{url}/oauth/introspect", data={"token": token}, auth=creds, timeout=20)


def _token_probe(gw: GatewayClients) -> None:
    for scope in ("admin", "inventory:admin", "erp:read", "portal:staff"):
        asked = httpx.post(
            f"{gw.url}/oauth/token",
            data={"grant_type": "client_credentials", "scope": scope},
            auth=gw.b,
            timeout=20,
        )
        assert asked.status_code == 400, f"{scope}: {asked.text}"
        assert asked.json()["error"] == "invalid_scope", asked.text
    claims = _introspect(gw.url, gw.resource_server, gw.b_token).json()
    assert claims["active"] is True
    assert claims["customer_id"] == gw.b_customer_id and claims["client_id"] == gw.b[0]
    assert set(claims["scope"].split()) == set(PARTNER_SCOPES.split())


def _introspect_probe(gw: GatewayClients) -> None:
    refused = _introspect(gw.url, gw.b, gw.a_token)
    assert refused.status_code == 403, refused.text
    assert refused.json()["error"] == "unauthorized_client", refused.text
    assert "customer_id" not in refused.text


def _revoke_probe(gw: GatewayClients) -> None:
    refused = httpx.post(
        f"{gw.url}/oauth/revoke", data={"token": gw.a_token}, auth=gw.b, timeout=20
    )
    assert refused.status_code == 400, refused.text
    assert refused.json()["error"] == "invalid_grant", refused.text
    assert _introspect(gw.url, gw.resource_server, gw.a_token).json()["active"] is True


def test_a_bound_client_can_never_introspect_other_clients_tokens(
    world: World, gateway: GatewayClients
) -> None:
    """Introspection answers any token's customer, client and scopes: resource servers
    only. The registry refuses the scope to a bound client, and a bound client of the
    internal tier (no rate limit, an operator's choice) is still no resource server."""
    registry = ClientRegistry(gateway.database_url)
    try:
        with pytest.raises(ValueError, match="introspect"):
            registry.create("partner", "introspect orders:read", customer_id=world.b_customer_id)
        internal_b = registry.create(
            "partner-internal", PARTNER_SCOPES, customer_id=world.b_customer_id, tier="internal"
        )
    finally:
        registry.close()
    refused = _introspect(gateway.url, internal_b, gateway.a_token)
    assert refused.status_code == 403, refused.text
    assert world.a.customer_id not in refused.text


CLIENT_PROBES: dict[str, Callable[[GatewayClients], None]] = {
    "/oauth/token": _token_probe,
    "/oauth/introspect": _introspect_probe,
    "/oauth/revoke": _revoke_probe,
}


@pytest.mark.parametrize("entry", entries(lambda e: e.auth == "client"))
def test_oauth_endpoints_serve_a_bound_client_its_own_tokens_only(
    gateway: GatewayClients, entry: Entry
) -> None:
    assert entry.path in CLIENT_PROBES, f"{entry}: add a probe to CLIENT_PROBES"
    CLIENT_PROBES[entry.path](gateway)
