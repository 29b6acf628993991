"""``GET /contracts`` and ``GET /contracts/{api}/{version}/openapi.json``.

Each OpenAPI document is fetched from the service's own ``/schema/openapi.json`` at
request time, so the catalog always shows what is deployed.
"""

from __future__ import annotations

from typing import Any

from litestar import Response, get
from litestar.params import FromPath

from gateway.routing.forwarder import Forwarder, UpstreamError
from shared.problems import ProblemError
from shared.settings import Settings
from shared.topology import SERVICES

VERSION = "v1"


def _entry(api: str, title: str, service_url: str) -> dict[str, Any]:
    base_path = "/graphql" if api == "graphql" else f"/{api}/{VERSION}"
    return {
        "name": api,
        "title": title,
        "version": VERSION,
        "status": "current",
        "base_path": base_path,
        "links": {
            "openapi": f"/contracts/{api}/{VERSION}/openapi.json",
            "docs": f"{service_url.rstrip('/')}/schema",
        },
    }


def contract_routes(forwarder: Forwarder, settings: Settings) -> list[Any]:
    services = {spec.api: spec for spec in SERVICES if spec.api}

    @get("/contracts", tags=["contracts"], sync_to_thread=False)
    def catalog() -> dict[str, Any]:
        """Every API with its version, status and links to its OpenAPI document and docs."""
        items = [
            _entry(api, spec.title, settings.url_of(spec.name)) for api, spec in services.items()
        ]
        return {"items": items, "next_cursor": None}

    @get("/contracts/{api:str}/{version:str}/openapi.json", tags=["contracts"])
    async def openapi(api: FromPath[str], version: FromPath[str]) -> Response[bytes]:
        """The OpenAPI 3.1 document of one API version, as the running service exports it."""
        spec = services.get(api)
        if spec is None:
            raise ProblemError(404, "unknown-api", f"No API named '{api}'; see /contracts.")
        if version != VERSION:
            raise ProblemError(
                404, "unknown-api-version", f"The {api} API has no version '{version}'."
            )
        url = settings.url_of(spec.name).rstrip("/") + "/schema/openapi.json"
        try:
            status, body = await forwarder.get(url, api)
        except UpstreamError as exc:
            raise ProblemError(
                exc.status, "bad-gateway" if exc.status == 502 else "gateway-timeout", exc.detail
            ) from exc
        if status != 200:
            raise ProblemError(
                502, "bad-gateway", f"The {api} service answered {status} for its OpenAPI document."
            )
        return Response(body, media_type="application/json")

    return [catalog, openapi]
