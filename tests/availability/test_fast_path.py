"""``POST /availability/v1/allocations`` answered by the fast path (decision 0019) says
exactly what the framework's route says, and every request the fast path does not
accept reaches the framework untouched."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import TestClient

from process_apis.availability.allocations.fast_path import AllocationFastPath
from shared.settings import load_settings
from tests.availability.helpers import item, ledger_drift, stock
from tests.support.tokens import TestIssuer

PATH = "/availability/v1/allocations"


class Framework:
    """The framework behind the fast path, counting what reaches it."""

    def __init__(self, app: Litestar) -> None:
        fast = app.asgi_handler
        assert isinstance(fast, AllocationFastPath)
        self.app = app
        self.fast = fast
        self.inner = fast.app
        self.posts = 0

        async def counting(scope: Any, receive: Any, send: Any) -> None:
            if scope["type"] == "http" and scope["method"] == "POST" and scope["path"] == PATH:
                self.posts += 1
            await self.inner(scope, receive, send)

        fast.app = counting

    def bypass(self) -> _Bypass:
        return _Bypass(self)


class _Bypass:
    """Inside: the app without the fast path (the route as Litestar serves it)."""

    def __init__(self, framework: Framework) -> None:
        self.framework = framework

    def __enter__(self) -> None:
        self.framework.app.asgi_handler = self.framework.inner

    def __exit__(self, *_: object) -> None:
        self.framework.app.asgi_handler = self.framework.fast


@pytest.fixture
def settings(tmp_path: Path) -> Any:
    """The embedded default only: the fast path is the same code on either database."""
    return load_settings("availability", data_dir=tmp_path)


@pytest.fixture
def framework(client: TestClient[Any]) -> Framework:
    return Framework(client.app)


def order(order_id: str, quantity: int = 1, **extra: Any) -> dict[str, Any]:
    return {
        "order_id": order_id,
        "channel": "b2b",
        "lines": [{"sku": "A", "quantity": quantity}],
        **extra,
    }


def post(client: TestClient[Any], body: Any, key: str, **headers: str) -> Any:
    return client.post(PATH, json=body, headers={"Idempotency-Key": key, **headers})


def comparable(response: Any) -> tuple[int, dict[str, str], Any]:
    """Status, headers and body, less what differs per request (correlation id)."""
    headers = {
        k: v for k, v in response.headers.items() if k not in ("x-correlation-id", "content-length")
    }
    body = response.json()
    if isinstance(body, dict):
        body.pop("correlation_id", None)
    return response.status_code, headers, body


def test_an_allocation_is_answered_as_the_framework_answers_it(
    client: TestClient[Any], settings: Any, framework: Framework
) -> None:
    stock(client, settings, "WH1", A=10)

    fast = post(client, order("SO-1", 2), "k-1", **{"X-Correlation-Id": "trace-me"})
    with framework.bypass():
        slow = post(client, order("SO-2", 2), "k-2")

    assert framework.posts == 0  # the framework never saw the fast one
    assert fast.status_code == slow.status_code == 201
    assert fast.headers["x-correlation-id"] == "trace-me"
    fast_view, slow_view = comparable(fast), comparable(slow)
    assert fast_view[1] == slow_view[1]  # same headers: content type, deprecation, ...
    assert "deprecation" in fast_view[1]
    for body in (fast_view[2], slow_view[2]):
        body.pop("allocation_id"), body.pop("order_id")
        body.pop("created_at"), body.pop("updated_at")
    assert fast_view[2] == slow_view[2]
    assert item(client, "A")["available_to_promise"] == 6
    assert ledger_drift(settings) == {}


def test_replays_and_refusals_of_the_batch_are_the_frameworks_own(
    client: TestClient[Any], settings: Any, framework: Framework
) -> None:
    stock(client, settings, "WH1", A=3)
    first = post(client, order("SO-1"), "k-1")
    cases = [
        (order("SO-1"), "k-1"),  # a replay
        (order("SO-1", 2), "k-1"),  # the key with another payload: 422
        (order("SO-9", 5, policy="reject"), "k-9"),  # insufficient stock: 409
        (order("SO-1"), "k-other"),  # the order again under another key: 409
    ]
    for body, key in cases:
        fast = post(client, body, key)
        with framework.bypass():
            slow = post(client, body, key)
        assert comparable(fast) == comparable(slow), (body, key)
        if fast.status_code >= 400:
            problem = fast.json()
            assert fast.headers["content-type"] == "application/problem+json"
            assert problem["instance"] == PATH
            assert problem["correlation_id"] == fast.headers["x-correlation-id"]
    assert framework.posts == 0
    replay = post(client, order("SO-1"), "k-1")
    assert replay.headers["idempotent-replayed"] == "true"
    assert replay.json() == first.json()
    assert item(client, "A")["available_to_promise"] == 2


@pytest.mark.parametrize(
    ("case", "status"),
    [
        ("no token", 401),
        ("read-only token", 403),
        ("no key", 400),
        ("key with a space", 400),
        ("quantity 0", 400),
        ("unknown field", 400),
        ("not JSON", 400),
        ("text/plain", 415),
        ("no content type", 415),
        ("duplicate key", 400),
        ("string quantity", 400),
        ("invalid UTF-8", 400),
        ("nested 3,000 deep", 400),
    ],
)
# One branch per case of the table above: each builds its own request.
def test_what_the_fast_path_does_not_accept_reaches_the_framework(  # noqa: C901
    client: TestClient[Any],
    settings: Any,
    issuer: TestIssuer,
    framework: Framework,
    case: str,
    status: int,
) -> None:
    stock(client, settings, "WH1", A=5)
    headers = {"Idempotency-Key": "k-1", "Content-Type": "application/json"}
    content = b'{"order_id": "SO-1", "channel": "b2b", "lines": [{"sku": "A", "quantity": 1}]}'
    if case == "no token":
        headers["Authorization"] = ""
    elif case == "read-only token":
        token = issuer.token("inventory:read", audience="availability")
        headers["Authorization"] = f"Bearer {token}"
    elif case == "no key":
        del headers["Idempotency-Key"]
    elif case == "key with a space":
        headers["Idempotency-Key"] = "k 1"
    elif case == "quantity 0":
        content = content.replace(b'"quantity": 1', b'"quantity": 0')
    elif case == "unknown field":
        content = content.replace(b'"channel"', b'"discount": 5, "channel"')
    elif case == "not JSON":
        content = b"order SO-1"
    elif case == "text/plain":
        headers["Content-Type"] = "text/plain"
        content = b"order SO-1"
    elif case == "no content type":  # the kernel's strict decoding (decision 0022)
        del headers["Content-Type"]
    elif case == "duplicate key":
        content = content.replace(b'"quantity": 1', b'"quantity": 1, "quantity": 3')
    elif case == "string quantity":
        content = content.replace(b'"quantity": 1', b'"quantity": "1"')
    elif case == "invalid UTF-8":
        content = content.replace(b'"SO-1"', b'"SO-\xff"')
    elif case == "nested 3,000 deep":
        content = content.replace(b'"b2b"', b"[" * 3000 + b"]" * 3000)

    fast = client.post(PATH, content=content, headers=headers)
    with framework.bypass():
        slow = client.post(PATH, content=content, headers=headers)

    assert framework.posts == 1  # the fast path handed it on, body and all
    assert fast.status_code == status, fast.text
    assert comparable(fast) == comparable(slow)
    assert fast.headers["content-type"] == "application/problem+json"
    assert item(client, "A")["available_to_promise"] == 5  # nothing was allocated
