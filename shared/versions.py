"""The one table of API versions and their status (see gateway/contracts/versions.py
for what each status means). It lives in the kernel because both sides read it: the
gateway routes and catalogs by it, and a service stamps ``Deprecation``/``Sunset``/
``Link`` on the answers of its own deprecated majors (a service must not import the
gateway package)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from email.utils import format_datetime
from typing import Literal

Status = Literal["preview", "current", "deprecated", "retired"]


@dataclass(frozen=True, slots=True)
class ApiVersion:
    api: str  # first path segment, as in shared.topology
    major: int
    status: Status
    deprecated_on: date | None = None  # when it was announced deprecated
    sunset: date | None = None  # last day it is served
    successor: int | None = None  # the major callers should move to

    @property
    def name(self) -> str:
        return f"v{self.major}"

    @property
    def base_path(self) -> str:
        return f"/{self.api}/{self.name}"

    @property
    def served(self) -> bool:
        return self.status != "retired"


VERSIONS: tuple[ApiVersion, ...] = (
    ApiVersion("erp", 1, "current"),
    ApiVersion("wms", 1, "current"),
    ApiVersion(
        "availability",
        1,
        "deprecated",
        deprecated_on=date(2026, 11, 23),
        sunset=date(2027, 5, 31),
        successor=2,
    ),
    ApiVersion("availability", 2, "current"),
    ApiVersion("orders", 1, "current"),
    ApiVersion("billing", 1, "current"),
)


def find(api: str, major: int) -> ApiVersion | None:
    return next((v for v in VERSIONS if v.api == api and v.major == major), None)


def _http_date(day: date) -> str:
    return format_datetime(datetime(day.year, day.month, day.day, tzinfo=UTC), usegmt=True)


def deprecation_headers(version: ApiVersion) -> dict[str, str]:
    """Headers every answer of a deprecated version carries (empty for the others)."""
    if version.status != "deprecated":
        return {}
    announced = version.deprecated_on or date(1970, 1, 1)
    seconds = int(datetime(announced.year, announced.month, announced.day, tzinfo=UTC).timestamp())
    headers = {"Deprecation": f"@{seconds}"}
    if version.sunset is not None:
        headers["Sunset"] = _http_date(version.sunset)
    # Both point at the rendered contracts the gateway serves, so a link always resolves.
    links = [f'</contracts/{version.api}/{version.name}/schema>; rel="deprecation"']
    if version.successor is not None:
        links.insert(
            0, f'</contracts/{version.api}/v{version.successor}/schema>; rel="successor-version"'
        )
    headers["Link"] = ", ".join(links)
    return headers
