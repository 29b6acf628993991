"""The contract catalog on a real gateway (uvicorn) in front of a real upstream service:
versions and status from the version table, documents cut per major, rendered docs."""

from __future__ import annotations

from datetime import date

import httpx
import pytest

from gateway.contracts import versions
from gateway.contracts.documents import for_major, majors_in
from gateway.contracts.versions import ApiVersion, deprecation_headers

PROBLEM = "application/problem+json"
REST_APIS = {"erp", "wms", "availability", "orders", "billing"}


@pytest.fixture
def erp_v2(monkeypatch: pytest.MonkeyPatch) -> ApiVersion:
    """erp v1 deprecated in favour of a v2, and an old v0 retired."""
    old = ApiVersion("erp", 1, "deprecated", date(2026, 11, 1), date(2027, 6, 30), successor=2)
    others = [v for v in versions.VERSIONS if v.api != "erp"]
    table = (*others, ApiVersion("erp", 0, "retired"), old, ApiVersion("erp", 2, "current"))
    monkeypatch.setattr(versions, "VERSIONS", table)
    return old


def test_catalog_lists_every_api_with_its_versions(http: httpx.Client) -> None:
    response = http.get("/contracts")
    assert response.status_code == 200
    body = response.json()
    assert body["next_cursor"] is None
    by_name = {item["name"]: item for item in body["items"]}
    assert set(by_name) == REST_APIS | {"graphql"}
    for api in REST_APIS:
        item = by_name[api]
        assert item["kind"] == "openapi"
        table = versions.versions_of(api)  # availability: v1 deprecated beside v2
        assert [v["version"] for v in item["versions"]] == [v.name for v in table]
        assert item["versions"][0]["status"] == table[0].status
        assert item["versions"][0]["links"] == {
            "openapi": f"/contracts/{api}/v1/openapi.json",
            "docs": f"/contracts/{api}/v1/schema",
            "swagger": f"/contracts/{api}/v1/schema/swagger",
            "redoc": f"/contracts/{api}/v1/schema/redoc",
        }
    assert by_name["graphql"]["kind"] == "graphql"
    assert by_name["graphql"]["links"] == {"graphiql": "/graphql"}


def test_catalog_shows_deprecation_sunset_and_successor(
    http: httpx.Client, erp_v2: ApiVersion
) -> None:
    erp = next(i for i in http.get("/contracts").json()["items"] if i["name"] == "erp")
    assert erp["version"] == "v2"  # the headline is the newest current major
    listed = {v["version"]: v for v in erp["versions"]}
    assert list(listed) == ["v0", "v1", "v2"]
    assert listed["v1"]["status"] == "deprecated"
    assert listed["v1"]["deprecated_on"] == "2026-11-01"
    assert listed["v1"]["sunset"] == "2027-06-30"
    assert listed["v1"]["successor"] == "v2"
    assert listed["v0"]["status"] == "retired"
    assert listed["v0"]["links"] == {}


def test_document_of_a_version_is_the_services_own(http: httpx.Client) -> None:
    response = http.get("/contracts/erp/v1/openapi.json")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    document = response.json()
    assert document["openapi"].startswith("3.1")
    assert "/erp/v1/{rest}" in document["paths"]
    assert "deprecation" not in response.headers


def test_document_of_a_deprecated_version_carries_the_headers(
    http: httpx.Client, erp_v2: ApiVersion
) -> None:
    response = http.get("/contracts/erp/v1/openapi.json")
    assert response.status_code == 200
    assert response.headers["deprecation"] == "@1793491200"
    assert response.headers["sunset"] == "Wed, 30 Jun 2027 00:00:00 GMT"
    assert '</contracts/erp/v2/schema>; rel="successor-version"' in response.headers["link"]


def test_scalar_docs_load_the_catalogs_document(http: httpx.Client) -> None:
    response = http.get("/contracts/orders/v1/schema")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert 'data-url="/contracts/orders/v1/openapi.json"' in response.text


@pytest.mark.parametrize(
    ("renderer", "marker"), [("swagger", "SwaggerUIBundle"), ("redoc", "Redoc.init")]
)
def test_swagger_and_redoc_embed_the_document(
    http: httpx.Client, renderer: str, marker: str
) -> None:
    response = http.get(f"/contracts/erp/v1/schema/{renderer}")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert marker in response.text
    assert "/erp/v1/{rest}" in response.text


@pytest.mark.parametrize(
    ("path", "status", "slug"),
    [
        ("/contracts/crm/v1/openapi.json", 404, "unknown-api"),
        ("/contracts/erp/v9/openapi.json", 404, "unknown-api-version"),
        ("/contracts/erp/latest/openapi.json", 404, "unknown-api-version"),
        ("/contracts/graphql/v1/openapi.json", 404, "unknown-api"),
        ("/contracts/erp/v1/schema/rapidoc", 404, "unknown-renderer"),
        ("/contracts/erp/v9/schema", 404, "unknown-api-version"),
    ],
)
def test_unknown_things_are_problems(http: httpx.Client, path: str, status: int, slug: str) -> None:
    response = http.get(path)
    assert response.status_code == status
    assert response.headers["content-type"] == PROBLEM
    assert response.json()["type"] == f"/problems/{slug}"


def test_retired_version_is_gone(http: httpx.Client, erp_v2: ApiVersion) -> None:
    response = http.get("/contracts/erp/v0/openapi.json")
    assert response.status_code == 410
    assert response.json()["type"] == "/problems/api-version-retired"


@pytest.mark.parametrize(
    "path", ["/contracts/billing/v1/openapi.json", "/contracts/billing/v1/schema/redoc"]
)
def test_a_service_that_is_down_is_a_bad_gateway(http: httpx.Client, path: str) -> None:
    response = http.get(path)
    assert response.status_code == 502
    assert response.headers["content-type"] == PROBLEM
    assert "billing" in response.json()["detail"]


def test_document_is_cut_to_one_major() -> None:
    document = {
        "openapi": "3.1.0",
        "paths": {
            "/availability/v1/items/{sku}": {
                "get": {"responses": {"200": {"$ref": "#/components/schemas/ItemV1"}}}
            },
            "/availability/v2/items/{sku}": {
                "get": {"responses": {"200": {"$ref": "#/components/schemas/ItemV2"}}}
            },
        },
        "components": {
            "schemas": {
                "ItemV1": {"properties": {"m": {"$ref": "#/components/schemas/Money"}}},
                "ItemV2": {"properties": {"lots": {"type": "array"}}},
                "Money": {"type": "object"},
            },
            "securitySchemes": {"oauth2": {"type": "oauth2"}},
        },
    }
    assert majors_in(document) == [1, 2]
    v1 = for_major(document, 1)
    assert list(v1["paths"]) == ["/availability/v1/items/{sku}"]
    assert set(v1["components"]["schemas"]) == {"ItemV1", "Money"}
    assert v1["components"]["securitySchemes"] == {"oauth2": {"type": "oauth2"}}
    v2 = for_major(document, 2)
    assert set(v2["components"]["schemas"]) == {"ItemV2"}
    assert len(document["paths"]) == 2  # the original is untouched
    single = {"paths": {"/erp/v1/items": {}}}
    assert for_major(single, 1) is single


def test_current_version_has_no_deprecation_headers() -> None:
    assert deprecation_headers(ApiVersion("orders", 1, "current")) == {}
