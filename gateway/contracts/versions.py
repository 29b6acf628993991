"""The one table of API versions and their status.

The contract catalog lists it, the gateway's versioned routing can read it (which
majors to forward, which answers carry ``Deprecation``/``Sunset``/``Link``), and
``tally contracts`` uses it to know which majors are published. Change a status
here and every reader follows.

Status:
- ``preview``: served, not yet promised; no breaking-change baseline yet.
- ``current``: served and promised; changes within it must not break callers.
- ``deprecated``: still served and promised until ``sunset``; answers carry
  ``Deprecation`` (RFC 9745), ``Sunset`` (RFC 8594) and a ``Link`` to the successor.
- ``retired``: no longer served (the gateway answers 410); listed for the record.
"""

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
    ApiVersion("availability", 1, "current"),
    ApiVersion("orders", 1, "current"),
    ApiVersion("billing", 1, "current"),
)


def versions_of(api: str) -> list[ApiVersion]:
    return sorted((v for v in VERSIONS if v.api == api), key=lambda v: v.major)


def find(api: str, major: int) -> ApiVersion | None:
    return next((v for v in VERSIONS if v.api == api and v.major == major), None)


def parse_major(segment: str) -> int | None:
    """``"v2"`` -> 2; anything else -> None."""
    digits = segment[1:] if segment.startswith("v") else ""
    canonical = digits.isdigit() and (digits == "0" or not digits.startswith("0"))
    return int(digits) if canonical else None


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
    links = [f'</contracts/{version.api}/{version.name}/docs>; rel="deprecation"']
    if version.successor is not None:
        links.insert(0, f'</{version.api}/v{version.successor}>; rel="successor-version"')
    headers["Link"] = ", ".join(links)
    return headers
