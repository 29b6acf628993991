"""Requests that are not what they claim (issue 14, decision 0022): every JSON-accepting
route of every service, found by walking the live route list of each app, refuses a
malformed body with a 4xx problem and writes nothing.

Each route's body is the example its own contract publishes (valid by construction,
tests/contract/test_examples.py), mutated one way per case. A control sends the
unmutated example, so each refusal is the mutation's doing. The services run
in-process with the test issuer's tokens; the last tests send the issue's own
findings to the real platform, through the gateway and straight at the services,
with the tokens partners get."""

from __future__ import annotations

import copy
import hashlib
import re
import sqlite3
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
from litestar import Litestar
from litestar.routes import HTTPRoute
from litestar.testing import TestClient

from shared.openapi import openapi_document
from shared.request_body import JSON_BODY, accepts_json_body
from shared.topology import ALL_SCOPES, BY_NAME, SERVICES
from tests.security.helpers import World, bearer
from tests.support.platform import PlatformClient
from tests.support.problems import assert_problem
from tests.support.stack import Stack
from tests.support.tls import TLS
from tests.support.tokens import TestIssuer

BUILT_BY_THE_KERNEL = [spec.name for spec in SERVICES if spec.api]  # the gateway only relays
UNSUPPORTED = "/problems/unsupported-media-type"
MALFORMED = "/problems/malformed-json"
INVALID = "/problems/invalid-request"
# A route that reads its JSON body itself has no schema to take an example from.
OWN_BODY_EXAMPLES: dict[str, Any] = {"/graphql": {"query": "{ __typename }"}}
PATH_VALUES = {"sku": "SKU-1001", "channel": "b2b_portal", "region": "us-east"}
_MARK = "\u2603mark\u2603"


@dataclass(frozen=True)
class JsonRoute:
    method: str
    template: str  # the path as the contract spells it
    path: str  # with its parameters filled in
    example: Any
    typed: bool  # a ``data`` parameter of a declared type (not a body read by hand)

    def __str__(self) -> str:
        return f"{self.method} {self.path}"


@dataclass(frozen=True)
class Sent:
    content: bytes
    content_type: str | None = "application/json"


@dataclass(frozen=True)
class Case:
    send: Callable[[JsonRoute], Sent | None]  # None: the case does not apply to the route
    status: int
    problem: str
    typed_only: bool = False


def json_routes(app: Litestar) -> list[JsonRoute]:
    """Every POST/PUT/PATCH handler of ``app`` that can read a request body."""
    document = openapi_document(app)
    found = []
    for route in app.routes:
        if not isinstance(route, HTTPRoute):
            continue
        for handler in route.route_handlers:
            methods = handler.http_methods & {"POST", "PUT", "PATCH"}
            parameters = handler.parsed_fn_signature.parameters
            if not methods or not ("data" in parameters or handler.opt.get(JSON_BODY)):
                continue
            (method,) = methods
            typed = "data" in parameters
            template = re.sub(r"\{(\w+):\w+\}", r"{\1}", route.path)
            if typed:
                operation = document["paths"][template][method.lower()]
                example = operation["requestBody"]["content"]["application/json"]["example"]
            else:
                example = OWN_BODY_EXAMPLES[route.path]
            path = re.sub(r"\{(\w+)\}", lambda m: _path_value(m.group(1)), template)
            found.append(JsonRoute(method, template, path, example, typed))
    return found


def _path_value(name: str) -> str:
    if name in PATH_VALUES:
        return PATH_VALUES[name]
    return f"{name.removesuffix('_id').upper().replace('_', '-')}-1001"


# Where in an example to mutate: the first leaf of a kind, depth first, in key order.
Where = tuple[str | int, ...]


def _leaves(value: Any, at: Where = ()) -> Iterator[tuple[Where, Any]]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _leaves(item, (*at, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _leaves(item, (*at, index))
    else:
        yield at, value


def _first(value: Any, kind: Callable[[Any], bool]) -> Where | None:
    return next((at for at, leaf in _leaves(value) if kind(leaf)), None)


def _is_int(leaf: Any) -> bool:
    return isinstance(leaf, int) and not isinstance(leaf, bool)


def _replaced(value: Any, at: Where, new: Any) -> Any:
    changed = copy.deepcopy(value)
    target = changed
    for step in at[:-1]:
        target = target[step]
    target[at[-1]] = new
    return changed


def _encoded(value: Any) -> bytes:
    return msgspec.json.encode(value)


def _with_raw(example: Any, at: Where | None, raw: bytes) -> bytes:
    """The example with the leaf at ``at`` (else a new top-level key) spelled ``raw``."""
    marked = _replaced(example, at, _MARK) if at else {**example, "mark": _MARK}
    return _encoded(marked).replace(_encoded(_MARK), raw)


def _invalid_utf8(route: JsonRoute) -> Sent:
    at = _first(route.example, lambda leaf: isinstance(leaf, str))
    return Sent(_with_raw(route.example, at, b'"SKU-\xff\xfe"'))


def _first_key(example: Any) -> str:
    return next(iter(example), "field")  # an example of no fields: any name will do


def _nested_3000(route: JsonRoute) -> Sent:
    nested = b"[" * 3000 + b"]" * 3000
    return Sent(_encoded({_first_key(route.example): _MARK}).replace(_encoded(_MARK), nested))


def _duplicate_key(route: JsonRoute) -> Sent:
    """The issue's receipt: ``"quantity": 4, "quantity": 999999`` (the last one won)."""
    # A member of an object (a list's item has no key to repeat).
    keyed = [at for at, _ in _leaves(route.example) if at and isinstance(at[-1], str)]
    ints = [at for at in keyed if _is_int(_lookup(route.example, at))]
    at = (ints or keyed or [(_first_key(route.example),)])[0]
    twice = _replaced(route.example, (*at[:-1], "__twice__"), 999999)
    if at[-1] not in _lookup(route.example, at[:-1]):
        twice = _replaced(twice, at, 4)
    return Sent(_encoded(twice).replace(b'"__twice__"', _encoded(at[-1])))


def _lookup(value: Any, at: Where) -> Any:
    for step in at:
        value = value[step]
    return value


def _nan(route: JsonRoute) -> Sent:
    at = _first(route.example, lambda leaf: isinstance(leaf, int | float))
    return Sent(_with_raw(route.example, at, b"NaN"))


def _string_for_integer(route: JsonRoute) -> Sent | None:
    at = _first(route.example, _is_int)
    if at is None:
        return None
    leaf = next(leaf for where, leaf in _leaves(route.example) if where == at)
    return Sent(_encoded(_replaced(route.example, at, str(leaf))))


def _huge_integer(route: JsonRoute) -> Sent | None:
    at = _first(route.example, _is_int)
    return None if at is None else Sent(_encoded(_replaced(route.example, at, 2**63)))


def _fraction_for_integer(route: JsonRoute) -> Sent | None:
    at = _first(route.example, _is_int)
    return None if at is None else Sent(_encoded(_replaced(route.example, at, 4.5)))


def _unknown_field(route: JsonRoute) -> Sent:
    return Sent(_encoded({**route.example, "unexpected_field": 1}))


def _huge_id(route: JsonRoute) -> Sent | None:
    at = _first(route.example, lambda leaf: isinstance(leaf, str))
    return None if at is None else Sent(_encoded(_replaced(route.example, at, "X" * 10_000)))


def _nul_in_a_string(route: JsonRoute) -> Sent | None:
    at = _first(route.example, lambda leaf: isinstance(leaf, str))
    return None if at is None else Sent(_encoded(_replaced(route.example, at, "A\u0000B")))


def _as(content_type: str | None) -> Callable[[JsonRoute], Sent]:
    return lambda route: Sent(_encoded(route.example), content_type)


def _form_encoded(route: JsonRoute) -> Sent:
    return Sent(f"{_first_key(route.example)}=1".encode(), "application/x-www-form-urlencoded")


CASES: dict[str, Case] = {
    "invalid UTF-8": Case(_invalid_utf8, 400, MALFORMED),
    "nested 3,000 deep": Case(_nested_3000, 400, MALFORMED),
    "duplicate key": Case(_duplicate_key, 400, MALFORMED),
    "NaN": Case(_nan, 400, MALFORMED),
    "U+0000 in a string": Case(_nul_in_a_string, 400, MALFORMED),
    "text/plain": Case(_as("text/plain"), 415, UNSUPPORTED),
    "form-encoded": Case(_form_encoded, 415, UNSUPPORTED),
    "no Content-Type": Case(_as(None), 415, UNSUPPORTED),
    "charset latin-1": Case(_as("application/json; charset=iso-8859-1"), 415, UNSUPPORTED),
    "merge-patch+json": Case(_as("application/merge-patch+json"), 415, UNSUPPORTED),
    "string for integer": Case(_string_for_integer, 400, INVALID, typed_only=True),
    "2**63": Case(_huge_integer, 400, INVALID, typed_only=True),
    "4.5 for integer": Case(_fraction_for_integer, 400, INVALID, typed_only=True),
    "unknown field": Case(_unknown_field, 400, INVALID, typed_only=True),
    "10 KB id": Case(_huge_id, 400, INVALID, typed_only=True),
}


@dataclass
class Served:
    name: str
    client: TestClient[Any]
    token: str
    routes: list[JsonRoute]
    database: Path

    def send(self, route: JsonRoute, sent: Sent) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.token}", "Idempotency-Key": uuid.uuid4().hex}
        if sent.content_type is not None:
            headers["Content-Type"] = sent.content_type
        return self.client.request(route.method, route.path, content=sent.content, headers=headers)

    def snapshot(self) -> dict[str, str]:
        """A digest of every row of every table of the service's database."""
        with sqlite3.connect(f"file:{self.database}?mode=ro", uri=True) as db:
            tables = [
                row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='table'")
            ]
            return {
                table: hashlib.sha256(
                    repr(sorted(map(repr, db.execute(f'SELECT * FROM "{table}"')))).encode()
                ).hexdigest()
                for table in tables
            }


@contextmanager
def serving(name: str, data_dir: Path, issuer: TestIssuer) -> Iterator[Served]:
    stack = Stack(data_dir, issuer, [name])
    app = stack.app(name)
    token = issuer.token(" ".join(ALL_SCOPES), audience=BY_NAME[name].api or name)
    database = Path(stack.settings(name).database_url.removeprefix("sqlite+aiosqlite:///"))
    with TestClient(app) as client:
        yield Served(name, client, token, json_routes(app), database)


@pytest.fixture(scope="module", params=BUILT_BY_THE_KERNEL)
def served(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, issuer: TestIssuer
) -> Iterator[Served]:
    """One app per service for the refusals (they write nothing to share)."""
    with serving(request.param, tmp_path_factory.mktemp(request.param), issuer) as service:
        yield service


def test_every_route_that_can_read_a_body_is_one_the_kernel_guards(served: Served) -> None:
    """A handler with a body parameter is checked by the kernel; one that takes the raw
    request on a method with a body must say whether it reads JSON from it
    (``opt={JSON_BODY: True | False}``), so none escapes the battery unseen. The walk
    finds routes in every service (billing's payments and price corrections included)."""
    assert served.routes, served.name
    for route in served.client.app.routes:
        for handler in getattr(route, "route_handlers", []):
            if not handler.http_methods & {"POST", "PUT", "PATCH"}:
                continue
            parameters = handler.parsed_fn_signature.parameters
            if "data" in parameters:
                assert accepts_json_body(handler), handler
            elif "request" in parameters:
                assert JSON_BODY in handler.opt, f"{handler} reads the request: declare JSON_BODY"
    paths = openapi_document(served.client.app)["paths"]
    for route in served.routes:
        if route.typed:  # the contract says what the kernel answers
            assert "415" in paths[route.template][route.method.lower()]["responses"], route


@pytest.mark.parametrize("case_name", list(CASES))
def test_a_malformed_body_is_a_4xx_problem_and_writes_nothing(
    served: Served, case_name: str
) -> None:
    case = CASES[case_name]
    before = served.snapshot()
    wrong, applied = [], 0
    for route in served.routes:
        if case.typed_only and not route.typed:
            continue
        sent = case.send(route)
        if sent is None:
            continue
        applied += 1
        response = served.send(route, sent)
        problem = (
            response.json()
            if response.headers.get("content-type", "").startswith("application/problem+json")
            else None
        )
        if (
            response.status_code != case.status
            or problem is None
            or problem["type"] != case.problem
            or problem["status"] != case.status
        ):
            wrong.append(f"{route}: {response.status_code} {response.text[:300]}")
        elif case_name == "string for integer":
            assert problem["errors"][0]["message"].startswith("Expected `int"), problem
    assert not wrong, "\n".join(wrong)
    assert applied or not served.routes or case.typed_only, f"{case_name} reached no route"
    assert served.snapshot() == before, "a refused request wrote something"


@pytest.mark.parametrize("service", BUILT_BY_THE_KERNEL)
def test_the_unmutated_example_passes_the_body_checks(
    service: str, tmp_path: Path, issuer: TestIssuer
) -> None:
    """The control: each case's refusal is its mutation's doing, not the example's. Its
    own app: what the examples write must not meet the refusals' snapshots."""
    with serving(service, tmp_path, issuer) as served:
        _send_examples(served)


def _send_examples(served: Served) -> None:
    for route in served.routes:
        for example in _spellings(route):
            _assert_passes_the_body_checks(served, route, example)


def _spellings(route: JsonRoute) -> list[Any]:
    """The example, and with its first integer spelled 4.0: one JSON number (JSON
    Schema's ``integer`` takes it too)."""
    at = _first(route.example, _is_int)
    if at is None:
        return [route.example]
    return [route.example, _replaced(route.example, at, float(_lookup(route.example, at)))]


def _assert_passes_the_body_checks(served: Served, route: JsonRoute, example: Any) -> None:
    response = served.send(route, Sent(_encoded(example), "application/json; charset=UTF-8"))
    # 503: the in-process service has no neighbours to call once the body is good
    assert response.status_code != 500, (str(route), response.text)
    if response.status_code >= 400:
        problem = response.json()
        assert problem["type"] not in (UNSUPPORTED, MALFORMED), (str(route), problem)
        body_errors = [e for e in problem.get("errors", []) if e.get("source") == "body"]
        assert not body_errors, (str(route), example, problem)


def test_graphql_variables_are_typed_by_graphql_without_coercion(
    tmp_path: Path, issuer: TestIssuer
) -> None:
    """The portal's body is transport (strict JSON, checked by the kernel); its values
    are GraphQL's to type: "5" for an Int is refused and nothing runs."""
    query = "query($n: Int!) { orders(first: $n) { nextCursor } }"
    with serving("portal", tmp_path, issuer) as portal:
        (route,) = portal.routes
        answer = portal.send(route, Sent(_encoded({"query": query, "variables": {"n": "5"}})))
    assert answer.status_code == 200  # GraphQL over HTTP, application/json
    assert answer.json()["data"] is None
    assert "Int cannot represent non-integer value" in answer.json()["errors"][0]["message"]


# The issue's findings on the real platform, through the gateway and straight at the
# services, with tokens from the gateway (a customer-bound client for the order).


def _stock(admin: httpx.Client, sku: str) -> Any:
    response = admin.get("/wms/v1/stock", params={"sku": sku})
    assert response.status_code == 200, response.text
    return response.json()


def _orders(admin: httpx.Client, customer_id: str) -> Any:
    response = admin.get("/orders/v1/orders", params={"customer_id": customer_id})
    assert response.status_code == 200, response.text
    return response.json()


# A finding: (string, number) spelled into a target's body, or the whole body; the
# Content-Type; the answer.
FINDINGS: dict[str, tuple[bytes | None, bytes | None, bytes | None, str | None, int, str]] = {
    "invalid UTF-8": (b"\xff\xfe", b"1", None, "application/json", 400, MALFORMED),
    "nested 3,000 deep": (
        None,
        None,
        b"[" * 3000 + b"]" * 3000,
        "application/json",
        400,
        MALFORMED,
    ),
    "string quantity": (None, b'"5"', None, "application/json", 400, INVALID),
    "duplicate quantity": (None, b'1, "@K@": 999999', None, "application/json", 400, MALFORMED),
    "text/plain": (None, b"1", None, "text/plain", 415, UNSUPPORTED),
    "form-encoded": (
        None,
        None,
        b"sku=A&quantity=1",
        "application/x-www-form-urlencoded",
        415,
        UNSUPPORTED,
    ),
    "no Content-Type": (None, b"1", None, None, 415, UNSUPPORTED),
}


@pytest.mark.parametrize("via", ["gateway", "direct"])
@pytest.mark.parametrize("finding", list(FINDINGS))
def test_the_issues_findings_on_the_platform(
    platform: PlatformClient, world: World, admin: httpx.Client, finding: str, via: str
) -> None:
    """POST /orders/v1/orders (a customer-bound client), /wms/v1/receipts and
    /erp/v1/items (the operator's client): refused, and stock and orders unchanged."""
    string, number, whole, content_type, status, problem = FINDINGS[finding]
    stock, orders = _stock(admin, world.sku), _orders(admin, world.a.customer_id)
    new_sku = f"NEW-{uuid.uuid4().hex[:8].upper()}"
    line = b'{"sku": "@S@", "quantity": @Q@}'
    targets = {  # service: (path, token, body with @S@ and @Q@, the number's key, string)
        "order_to_ship": (
            "/orders/v1/orders",
            bearer(platform, world.a.client),
            b'{"customer_id": "%s", "channel": "edi", "lines": [%s]}'
            % (world.a.customer_id.encode(), line),
            b"quantity",
            world.sku.encode(),
        ),
        "wms": (
            "/wms/v1/receipts",
            platform.token(),
            b'{"warehouse_id": "WH-EAST", "lines": [%s]}' % line,
            b"quantity",
            world.sku.encode(),
        ),
        "erp": (
            "/erp/v1/items",
            platform.token(),
            b'{"sku": "%s", "name": "@S@", "unit_price": {"amount_minor": @Q@, '
            b'"currency": "USD"}}' % new_sku.encode(),
            b"amount_minor",
            b"Security item",
        ),
    }
    for service, (path, token, template, key, usual) in targets.items():
        base = platform.gateway if via == "gateway" else platform.url(service)
        content = whole or (
            template.replace(b"@S@", string or usual)
            .replace(b"@Q@", number or b"1")
            .replace(b"@K@", key)
        )
        headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": uuid.uuid4().hex}
        if content_type is not None:
            headers["Content-Type"] = content_type
        with httpx.Client(base_url=base, timeout=30, verify=TLS) as api:
            response = api.post(path, content=content, headers=headers)
        assert_problem(response, status, problem, correlated=False)
    assert _stock(admin, world.sku) == stock
    assert _orders(admin, world.a.customer_id) == orders
    assert admin.get(f"/erp/v1/items/{new_sku}").status_code == 404
