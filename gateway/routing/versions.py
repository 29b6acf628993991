"""The routing view of the API version table (``gateway/contracts/versions.py``, the
one table the catalog, ``tally contracts`` and the router all read): per API and
major, the route label, whether it is retired (410), and the fields every answer of
a deprecated major carries (``Deprecation``, ``Sunset``, ``Link``). A major not in
the table is 404. Computed once at start, so the hot path does two dict lookups."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from gateway.contracts.versions import VERSIONS, ApiVersion, deprecation_headers


@dataclass(frozen=True, slots=True)
class VersionRoute:
    template: str  # the metrics / audit route label
    retired: bool
    fields: tuple[tuple[bytes, bytes], ...]  # added to every answer
    detail: str  # the 410's detail for a retired major


def _retired_detail(version: ApiVersion) -> str:
    detail = f"Version {version.name} of the {version.api} API was retired"
    if version.sunset is not None:
        detail += f" after {version.sunset.isoformat()}"
    if version.successor is not None:
        return f"{detail}; use /{version.api}/v{version.successor}."
    return f"{detail}."


def version_routes(
    table: Iterable[ApiVersion] = VERSIONS,
) -> dict[str, dict[str, VersionRoute]]:
    """api -> "v{major}" -> what the router needs."""
    routes: dict[str, dict[str, VersionRoute]] = {}
    for version in table:
        headers = deprecation_headers(version)
        routes.setdefault(version.api, {})[version.name] = VersionRoute(
            template=f"{version.base_path}/{{path}}",
            retired=version.status == "retired",
            fields=tuple(
                (name.lower().encode("latin-1"), value.encode("latin-1"))
                for name, value in headers.items()
            ),
            detail=_retired_detail(version),
        )
    return routes
