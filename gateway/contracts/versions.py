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

from shared.versions import VERSIONS as VERSIONS
from shared.versions import ApiVersion as ApiVersion
from shared.versions import Status as Status
from shared.versions import deprecation_headers as deprecation_headers

# The table itself lives in shared/versions.py (a service stamps the deprecation
# headers of its own deprecated majors and must not import the gateway). The lookups
# below read this module's ``VERSIONS`` so a test can swap the table here.


def versions_of(api: str) -> list[ApiVersion]:
    return sorted((v for v in VERSIONS if v.api == api), key=lambda v: v.major)


def find(api: str, major: int) -> ApiVersion | None:
    return next((v for v in VERSIONS if v.api == api and v.major == major), None)


def parse_major(segment: str) -> int | None:
    """``"v2"`` -> 2; anything else -> None."""
    digits = segment[1:] if segment.startswith("v") else ""
    canonical = digits.isdigit() and (digits == "0" or not digits.startswith("0"))
    return int(digits) if canonical else None
