"""``GET /contracts``: every API, its versions and status, with links to each major's
OpenAPI document and to rendered docs served here (Litestar's render plugins).

- ``/contracts/{api}/v{major}/openapi.json``: the service's own document, fetched at
  request time (what is deployed) and cut to that major.
- ``/contracts/{api}/v{major}/schema``: Scalar; ``.../schema/swagger`` and
  ``.../schema/redoc`` the other renderers (the layout of a service's own ``/schema``).

Versions and their status come from ``gateway.contracts.versions``.
"""

from __future__ import annotations

import json
from typing import Any

from litestar import Request, Response, get
from litestar.openapi.plugins import (
    OpenAPIRenderPlugin,
    RedocRenderPlugin,
    ScalarRenderPlugin,
    SwaggerRenderPlugin,
)
from litestar.params import FromPath

from gateway.contracts.documents import for_major
from gateway.contracts.versions import ApiVersion, deprecation_headers, parse_major, versions_of
from gateway.routing.forwarder import Forwarder, UpstreamError
from shared.problems import ProblemError
from shared.settings import Settings
from shared.topology import BY_API

GRAPHQL = "graphql"
HTML = "text/html; charset=utf-8"


def _links(version: ApiVersion) -> dict[str, str]:
    base = f"/contracts/{version.api}/{version.name}"
    return {
        "openapi": f"{base}/openapi.json",
        "docs": f"{base}/schema",
        "swagger": f"{base}/schema/swagger",
        "redoc": f"{base}/schema/redoc",
    }


def _version_entry(version: ApiVersion) -> dict[str, Any]:
    return {
        "version": version.name,
        "status": version.status,
        "deprecated_on": version.deprecated_on.isoformat() if version.deprecated_on else None,
        "sunset": version.sunset.isoformat() if version.sunset else None,
        "successor": f"v{version.successor}" if version.successor else None,
        "base_path": version.base_path,
        "links": _links(version) if version.served else {},
    }


def _api_entry(api: str, title: str) -> dict[str, Any]:
    versions = versions_of(api)
    served = [v for v in versions if v.served]
    # The headline version: the newest promised one (a preview is never the default).
    headline = next(
        (v for v in reversed(served) if v.status == "current"),
        served[-1] if served else None,
    )
    return {
        "name": api,
        "title": title,
        "kind": "openapi",
        "version": headline.name if headline else None,
        "status": headline.status if headline else "retired",
        "base_path": headline.base_path if headline else f"/{api}",
        "links": _links(headline) if headline else {},
        "versions": [_version_entry(v) for v in versions],
    }


def _graphql_entry(title: str) -> dict[str, Any]:
    # GraphQL evolves without majors: fields are deprecated in the schema itself.
    return {
        "name": GRAPHQL,
        "title": title,
        "kind": "graphql",
        "version": None,
        "status": "current",
        "base_path": "/graphql",
        "links": {"graphiql": "/graphql"},
        "versions": [],
    }


class _ScalarFrom(ScalarRenderPlugin):
    """Scalar loads the document from a URL; point it at the catalog's, not /schema."""

    def __init__(self, document_url: str) -> None:
        super().__init__()
        self.document_url = document_url

    # Litestar calls it with the request; the URL does not depend on it.
    def get_openapi_json_route(self, request: Request[Any, Any, Any]) -> str:  # type: ignore[override]  # noqa: ARG002
        return self.document_url


def resolve(api: str, version_segment: str) -> ApiVersion:
    """The served version ``version_segment`` (``v1``) of ``api``, else the problem."""
    if api not in BY_API or api == GRAPHQL:
        raise ProblemError(404, "unknown-api", f"No API named '{api}'; see /contracts.")
    major = parse_major(version_segment)
    version = next((v for v in versions_of(api) if v.major == major), None)
    if version is None:
        raise ProblemError(
            404, "unknown-api-version", f"The {api} API has no version '{version_segment}'."
        )
    if not version.served:
        raise ProblemError(
            410, "api-version-retired", f"{api} {version.name} is retired; see /contracts."
        )
    return version


async def fetch(forwarder: Forwarder, settings: Settings, version: ApiVersion) -> dict[str, Any]:
    """The running service's OpenAPI document, cut to the version's major."""
    spec = BY_API[version.api]
    url = settings.url_of(spec.name).rstrip("/") + "/schema/openapi.json"
    try:
        status, body = await forwarder.get(url, version.api)
    except UpstreamError as exc:
        slug = "bad-gateway" if exc.status == 502 else "gateway-timeout"
        raise ProblemError(exc.status, slug, exc.detail) from exc
    if status != 200:
        raise ProblemError(
            502, "bad-gateway", f"The {version.api} service answered {status} for its contract."
        )
    document: dict[str, Any] = for_major(json.loads(body), version.major)
    return document


def contract_routes(forwarder: Forwarder, settings: Settings) -> list[Any]:
    @get("/contracts", tags=["contracts"], sync_to_thread=False)
    def catalog() -> dict[str, Any]:
        """Every API with its versions, their status and links to documents and docs."""
        items = [
            _graphql_entry(spec.title) if api == GRAPHQL else _api_entry(api, spec.title)
            for api, spec in BY_API.items()
        ]
        return {"items": items, "next_cursor": None}

    @get("/contracts/{api:str}/{version:str}/openapi.json", tags=["contracts"])
    async def openapi(api: FromPath[str], version: FromPath[str]) -> Response[bytes]:
        """The OpenAPI 3.1 document of one API version, as the running service serves it."""
        found = resolve(api, version)
        document = await fetch(forwarder, settings, found)
        return Response(
            json.dumps(document).encode(),
            media_type="application/json",
            headers=deprecation_headers(found),
        )

    @get("/contracts/{api:str}/{version:str}/schema", tags=["contracts"], sync_to_thread=False)
    def scalar(
        request: Request[Any, Any, Any], api: FromPath[str], version: FromPath[str]
    ) -> Response[bytes]:
        """The version's reference docs, rendered by Scalar."""
        found = resolve(api, version)
        plugin = _ScalarFrom(_links(found)["openapi"])
        title = {"info": {"title": f"{BY_API[api].title} {found.name}"}}
        return Response(plugin.render(request, title), media_type=HTML)

    @get("/contracts/{api:str}/{version:str}/schema/{renderer:str}", tags=["contracts"])
    async def rendered(
        request: Request[Any, Any, Any],
        api: FromPath[str],
        version: FromPath[str],
        renderer: FromPath[str],
    ) -> Response[bytes]:
        """The version's reference docs, rendered by Swagger UI or Redoc."""
        plugins: dict[str, OpenAPIRenderPlugin] = {
            "swagger": SwaggerRenderPlugin(),
            "redoc": RedocRenderPlugin(),
        }
        plugin = plugins.get(renderer)
        if plugin is None:
            raise ProblemError(
                404, "unknown-renderer", f"No renderer '{renderer}' (known: swagger, redoc)."
            )
        document = await fetch(forwarder, settings, resolve(api, version))
        return Response(plugin.render(request, document), media_type=HTML)

    return [catalog, openapi, scalar, rendered]
