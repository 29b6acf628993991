"""Persisted queries through the portal: Apollo's APQ protocol (hash only, then query and
hash, then hash only again), and the setting that accepts only registered operations
(the files of contracts/graphql/examples, or the folder the setting names)."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
from litestar.testing import AsyncTestClient

from experience_apis.portal.app import create_app
from experience_apis.portal.limits import Guard
from experience_apis.portal.limits.guard import DEFAULT_OPERATIONS_DIR
from experience_apis.portal.limits.persisted import ApqStore
from tests.portal.upstreams import UpstreamState
from tests.support.tokens import TestIssuer

TYPENAME = "query Ping { __typename }"
REGISTERED = "# A registered operation.\nquery Registered {\n  __typename\n}\n"


def sha(query: str) -> str:
    return hashlib.sha256(query.encode()).hexdigest()


def persisted(sha256: str, version: int = 1) -> dict[str, Any]:
    return {"persistedQuery": {"version": version, "sha256Hash": sha256}}


async def post(
    client: AsyncTestClient[Any],
    token: str,
    *,
    query: str | None = None,
    extensions: dict[str, Any] | None = None,
) -> httpx.Response:
    body: dict[str, Any] = {}
    if query is not None:
        body["query"] = query
    if extensions is not None:
        body["extensions"] = extensions
    return await client.post("/graphql", json=body, headers={"Authorization": f"Bearer {token}"})


def codes(response: httpx.Response) -> list[str]:
    return [e["extensions"]["code"] for e in response.json().get("errors", [])]


@pytest.fixture
def operations(tmp_path: Path) -> Path:
    folder = tmp_path / "operations"
    folder.mkdir()
    (folder / "registered.graphql").write_text(REGISTERED)
    return folder


@pytest.fixture
def portal_with(
    portal_settings: Any, issuer: TestIssuer, upstreams: UpstreamState
) -> Callable[..., Any]:
    @asynccontextmanager
    async def start(**overrides: Any) -> AsyncIterator[AsyncTestClient[Any]]:
        settings = msgspec.structs.replace(portal_settings, **overrides)
        async with AsyncTestClient(app=create_app(settings, key_source=issuer.key_source())) as c:
            yield c

    return start


# --- APQ -------------------------------------------------------------------------------


async def test_apq_unknown_hash_then_query_and_hash_then_hash_only(
    portal: AsyncTestClient[Any], token: Callable[..., str]
) -> None:
    query = TYPENAME + " # apq flow"
    unknown = await post(portal, token(), extensions=persisted(sha(query)))
    registered = await post(portal, token(), query=query, extensions=persisted(sha(query)))
    by_hash = await post(portal, token(), extensions=persisted(sha(query)))

    assert unknown.status_code == 200
    assert unknown.json()["data"] is None
    (error,) = unknown.json()["errors"]
    assert error["message"] == "PersistedQueryNotFound"  # what Apollo's clients look for
    assert error["extensions"] == {"code": "PERSISTED_QUERY_NOT_FOUND"}
    assert registered.json()["data"] == {"__typename": "Query"}
    assert by_hash.json()["data"] == {"__typename": "Query"}
    assert by_hash.json()["extensions"]["cost"]["requestedQueryCost"] == 0


async def test_a_hash_that_is_not_the_querys_is_refused_and_stores_nothing(
    portal: AsyncTestClient[Any], token: Callable[..., str]
) -> None:
    query = TYPENAME + " # mismatch"
    wrong = sha("{ somethingElse }")
    refused = await post(portal, token(), query=query, extensions=persisted(wrong))
    later = await post(portal, token(), extensions=persisted(wrong))

    assert codes(refused) == ["PERSISTED_QUERY_HASH_MISMATCH"]
    assert codes(later) == ["PERSISTED_QUERY_NOT_FOUND"]


async def test_an_invalid_query_is_not_stored(
    portal: AsyncTestClient[Any], token: Callable[..., str]
) -> None:
    query = "{ noSuchField }"
    first = await post(portal, token(), query=query, extensions=persisted(sha(query)))
    again = await post(portal, token(), extensions=persisted(sha(query)))

    assert first.json()["errors"]
    assert codes(again) == ["PERSISTED_QUERY_NOT_FOUND"]


@pytest.mark.parametrize(
    "extensions",
    [
        persisted(sha(TYPENAME), version=2),
        persisted("ABC"),
        persisted(sha(TYPENAME).upper()),
        {"persistedQuery": "yes"},
    ],
)
async def test_a_malformed_persisted_query_extension_is_refused(
    portal: AsyncTestClient[Any], token: Callable[..., str], extensions: dict[str, Any]
) -> None:
    response = await post(portal, token(), query=TYPENAME, extensions=extensions)
    assert response.status_code == 200
    assert codes(response) == ["PERSISTED_QUERY_INVALID"]


async def test_persisted_queries_need_the_token_like_any_query(
    portal: AsyncTestClient[Any],
) -> None:
    response = await portal.post("/graphql", json={"extensions": persisted(sha(TYPENAME))})
    assert response.status_code == 401


# --- registered operations only ----------------------------------------------------------


async def test_only_registered_operations_run_when_the_setting_says_so(
    portal_with: Callable[..., Any], operations: Path, token: Callable[..., str]
) -> None:
    reformatted = "query Registered { __typename }"
    async with portal_with(
        portal_registered_only=True, portal_operations_dir=str(operations)
    ) as portal:
        by_hash = await post(portal, token(), extensions=persisted(sha(REGISTERED)))
        by_text = await post(portal, token(), query=REGISTERED)
        by_same_document = await post(portal, token(), query=reformatted)
        with_hash = await post(
            portal, token(), query=REGISTERED, extensions=persisted(sha(REGISTERED))
        )
        other = await post(portal, token(), query=TYPENAME)
        other_with_hash = await post(
            portal, token(), query=TYPENAME, extensions=persisted(sha(TYPENAME))
        )
        unknown_hash = await post(portal, token(), extensions=persisted(sha(TYPENAME)))

    for answer in (by_hash, by_text, by_same_document, with_hash):
        assert answer.json()["data"] == {"__typename": "Query"}, answer.text
    assert codes(other) == ["OPERATION_NOT_REGISTERED"]
    assert codes(other_with_hash) == ["OPERATION_NOT_REGISTERED"]  # and nothing is stored
    assert codes(unknown_hash) == ["PERSISTED_QUERY_NOT_FOUND"]


async def test_production_accepts_only_registered_operations_by_default(
    portal_with: Callable[..., Any], operations: Path, token: Callable[..., str]
) -> None:
    async with portal_with(
        environment="production", portal_operations_dir=str(operations)
    ) as portal:
        free_form = await post(portal, token(), query=TYPENAME)
        registered = await post(portal, token(), extensions=persisted(sha(REGISTERED)))
    async with portal_with(environment="production", portal_registered_only=False) as portal:
        switched_off = await post(portal, token(), query=TYPENAME)

    assert codes(free_form) == ["OPERATION_NOT_REGISTERED"]
    assert registered.json()["data"] == {"__typename": "Query"}
    assert switched_off.json()["data"] == {"__typename": "Query"}


def test_the_registry_is_the_contracts_example_operations(portal_settings: Any) -> None:
    guard = Guard.from_settings(portal_settings)
    files = sorted(DEFAULT_OPERATIONS_DIR.glob("*.graphql"))

    assert [op.file for op in guard.registry] == [f.stem for f in files]
    for op, path in zip(guard.registry, files, strict=True):
        assert op.query == path.read_text(encoding="utf-8")
        assert guard.registry.lookup(op.sha256) == op.query


def test_a_missing_registry_folder_registers_nothing(portal_settings: Any, tmp_path: Path) -> None:
    settings = msgspec.structs.replace(
        portal_settings, portal_operations_dir=str(tmp_path / "absent")
    )
    guard = Guard.from_settings(settings)
    assert list(guard.registry) == []
    assert not guard.registry.accepts(TYPENAME)


def test_the_apq_store_is_bounded_by_count_and_by_size() -> None:
    store = ApqStore(size=2, chars=10)
    store.put("a", "1234")
    store.put("b", "5678")
    store.get("a")  # a is now the most recent
    store.put("c", "90")
    assert (store.get("a"), store.get("b"), store.get("c")) == ("1234", None, "90")
    store.put("d", "123456789")  # 4 + 2 + 9 > 10: the oldest go
    assert (store.get("a"), store.get("c"), store.get("d")) == (None, None, "123456789")
    assert len(store) == 1
