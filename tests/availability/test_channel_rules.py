from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from litestar.testing import TestClient

from shared.settings import Settings
from tests.availability.helpers import count, hold, item, ledger_drift, order


def rule(client: TestClient[Any], rule_id: str, **body: Any) -> Any:
    return client.put(f"/availability/v1/channel-rules/{rule_id}", json=body)


def seen_by(client: TestClient[Any], sku: str, channel: str, group: str | None = None) -> int:
    params = {"channel": channel} | ({"customer_group": group} if group else {})
    response = client.get(f"/availability/v1/items/{sku}", params=params)
    assert response.status_code == 200, response.text
    value: int = response.json()["channel_available"]
    return value


def test_fences_and_caps_shape_what_each_channel_sees(
    client: TestClient[Any], settings: Settings
) -> None:
    count(client, "A", "WH1", 60)
    count(client, "A", "WH2", 40)
    assert (
        rule(client, "b2b-fence", sku="A", kind="fence", channel="b2b", quantity=30).status_code
        == 200
    )
    assert (
        rule(
            client, "key-accounts", sku="A", kind="fence", customer_group="strategic", percent=10
        ).status_code
        == 200
    )
    assert (
        rule(client, "mkt-cap", sku="A", kind="cap", channel="marketplace", quantity=25).status_code
        == 200
    )

    assert seen_by(client, "A", "web") == 100 - 30 - 10
    assert seen_by(client, "A", "b2b") == 100 - 10
    assert seen_by(client, "A", "b2b", "strategic") == 100
    assert seen_by(client, "A", "marketplace") == 25
    body = client.get("/availability/v1/items/A", params={"channel": "marketplace"}).json()
    assert body["available_to_promise"] == 100
    assert body["channel_view"] == {
        "eligible_available": 100,
        "fenced_for_others": 40,
        "cap_remaining": 25,
    }
    assert "as_of" in body and body["locations"]
    assert client.get("/availability/v1/items/A").json()["channel_available"] is None

    # The b2b channel uses its fence first: the others see no change.
    assert order(client, "SO-1", [("A", 20)], channel="b2b").status_code == 201
    assert seen_by(client, "A", "web") == 60
    # The marketplace takes up to its cap, and then sees nothing.
    assert order(client, "SO-2", [("A", 26)], channel="marketplace").status_code == 409
    assert order(client, "SO-3", [("A", 25)], channel="marketplace").status_code == 201
    assert seen_by(client, "A", "marketplace") == 0
    # A hold of the web channel may not dip into the fences.
    assert hold(client, [("A", 36)], channel="web").status_code == 409
    assert hold(client, [("A", 35)], channel="web").status_code == 201
    assert seen_by(client, "A", "web") == 0
    assert seen_by(client, "A", "b2b") == 10
    assert seen_by(client, "A", "b2b", "strategic") == 20
    assert ledger_drift(settings) == {}


def test_rules_are_listed_read_replaced_and_deleted(client: TestClient[Any]) -> None:
    rule(client, "r1", sku="A", kind="fence", channel="b2b", quantity=5)
    rule(client, "r1", sku="A", kind="fence", channel="b2b", quantity=7)
    rule(client, "r2", sku="B", kind="cap", channel="marketplace", percent=50)

    assert client.get("/availability/v1/channel-rules/r1").json()["quantity"] == 7
    listed = client.get("/availability/v1/channel-rules", params={"sku": "A"}).json()
    assert [r["rule_id"] for r in listed["items"]] == ["r1"]
    clash = rule(client, "r3", sku="A", kind="fence", channel="b2b", quantity=1)
    assert clash.status_code == 409
    assert clash.json()["type"] == "/problems/duplicate-rule"
    assert client.delete("/availability/v1/channel-rules/r1").status_code == 204
    assert client.get("/availability/v1/channel-rules/r1").status_code == 404
    assert client.delete("/availability/v1/channel-rules/r1").status_code == 404


@pytest.mark.parametrize(
    "body",
    [
        {"sku": "A", "kind": "fence", "channel": "b2b"},
        {"sku": "A", "kind": "fence", "channel": "b2b", "quantity": 1, "percent": 5},
        {"sku": "A", "kind": "fence", "channel": "b2b", "customer_group": "x", "quantity": 1},
        {"sku": "A", "kind": "cap", "customer_group": "x", "quantity": 1},
        {"sku": "A", "kind": "fence", "channel": "b2b", "percent": 101},
        {"sku": "A", "kind": "limit", "channel": "b2b", "quantity": 1},
    ],
)
def test_a_bad_rule_is_a_problem_and_stores_nothing(
    client: TestClient[Any], body: dict[str, Any]
) -> None:
    response = rule(client, "bad", **body)

    assert response.status_code in (400, 422), response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert client.get("/availability/v1/channel-rules/bad").status_code == 404


def test_a_ring_fence_holds_under_concurrent_allocations_and_holds(
    client: TestClient[Any], settings: Settings
) -> None:
    count(client, "A", "WH1", 60)
    count(client, "A", "WH2", 40)
    rule(client, "b2b-fence", sku="A", kind="fence", channel="b2b", quantity=40)

    def one(n: int) -> int:
        if n % 3 == 0:
            response = hold(client, [("A", 3)], channel="web")
            return 3 if response.status_code == 201 else 0
        response = order(client, f"SO-{n}", [("A", 3)], channel="marketplace", policy="partial")
        assert response.status_code == 201, response.text
        allocated: int = response.json()["lines"][0]["allocated"]
        return allocated

    with ThreadPoolExecutor(max_workers=16) as pool:
        taken = sum(pool.map(one, range(45)))  # 135 units asked by others, 60 free

    assert taken == 60
    assert seen_by(client, "A", "web") == 0
    assert seen_by(client, "A", "b2b") == 40
    assert order(client, "SO-b2b", [("A", 40)], channel="b2b").status_code == 201
    answer = item(client, "A")
    assert answer["available_to_promise"] == 0
    for location in answer["locations"]:
        assert location["allocated"] + location["reserved"] <= location["on_hand"]
    assert ledger_drift(settings) == {}


def test_the_v2_batch_read_answers_each_channels_figures_as_the_single_read_does(
    client: TestClient[Any],
) -> None:
    count(client, "A", "WH1", 60)
    count(client, "B", "WH1", 8)
    rule(client, "b2b-fence", sku="A", kind="fence", channel="b2b", quantity=30)
    rule(client, "key-accounts", sku="A", kind="fence", customer_group="strategic", percent=10)
    rule(client, "mkt-cap", sku="B", kind="cap", channel="marketplace", quantity=5)

    for channel, group in [("web", None), ("b2b", "strategic"), ("marketplace", None)]:
        params: list[tuple[str, str]] = [("sku", "A"), ("sku", "B"), ("sku", "NEVER")]
        params += [("channel", channel)] + ([("customer_group", group)] if group else [])
        batch = client.get("/availability/v2/items", params=params)
        assert batch.status_code == 200, batch.text
        figures = {i["sku"]: i["for_channel"] for i in batch.json()["items"]}
        for sku in ("A", "B", "NEVER"):
            assert figures[sku]["channel"] == channel
            assert figures[sku]["customer_group"] == group
            assert figures[sku]["channel_available"] == seen_by(client, sku, channel, group)
            single = client.get(f"/availability/v2/items/{sku}", params=params[3:]).json()
            assert single["for_channel"] == figures[sku]
    assert seen_by(client, "A", "web") == 60 - 30 - 6
    assert seen_by(client, "B", "marketplace") == 5

    plain = client.get("/availability/v2/items", params={"sku": "A"}).json()["items"][0]
    assert "for_channel" not in plain  # only when a channel is asked
    bad = client.get("/availability/v2/items", params={"sku": "A", "channel": "no spaces"})
    assert bad.status_code == 400
    assert bad.headers["content-type"].startswith("application/problem+json")
