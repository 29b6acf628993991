"""What every billing feature asks the ERP the same way: a problem passed through,
a list read to its end, one invoice read fresh."""

from __future__ import annotations

from typing import Any

import httpx
import msgspec

from shared.http import Downstream
from shared.problems import ProblemError
from shared.refusals import Refusal

_PROBLEM_MEMBERS = {"type", "title", "status", "detail", "instance", "correlation_id"}


def problem_type(response: httpx.Response) -> str | None:
    try:
        body = response.json()
    except ValueError:
        return None
    found = body.get("type") if isinstance(body, dict) else None
    return str(found) if found else None


def passed_through(response: httpx.Response, what: str) -> Refusal:
    """The ERP's refusal (4xx) as billing's answer: same status, type, detail and
    extra members. Anything else it answered is a 502."""
    if 400 <= response.status_code < 500 and response.status_code not in (401, 403):
        try:
            body = response.json()
        except ValueError:
            body = {}
        if isinstance(body, dict) and str(body.get("type", "")).startswith("/problems/"):
            extra = {k: v for k, v in body.items() if k not in _PROBLEM_MEMBERS}
            return Refusal(
                response.status_code,
                str(body["type"]).removeprefix("/problems/"),
                str(body.get("detail") or what),
                title=body.get("title"),
                extra=extra or None,
            )
    return ProblemError(502, "erp-error", f"{what}: the ERP answered {response.status_code}.")


async def read_all(erp: Downstream, path: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    """Every item of a paged ERP list."""
    items: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        query = {**params, "limit": 500}
        if cursor:
            query["cursor"] = cursor
        response = await erp.request("GET", path, params=query)
        if not response.is_success:
            raise passed_through(response, f"GET {path}")
        page = msgspec.json.decode(response.content)
        items += page["items"]
        cursor = page.get("next_cursor")
        if not cursor:
            return items


async def invoice(erp: Downstream, invoice_id: str) -> dict[str, Any] | None:
    """The ERP's invoice as it is now (None: the ERP has none by that id)."""
    response = await erp.request("GET", f"/erp/v1/invoices/{invoice_id}")
    if response.status_code == 404:
        return None
    if not response.is_success:
        raise passed_through(response, f"invoice {invoice_id}")
    found: dict[str, Any] = response.json()
    return found


async def invoices(erp: Downstream, invoice_ids: list[str]) -> list[dict[str, Any]]:
    """The ERP's invoices of these ids as they are now, 100 per read (an id the ERP
    does not have is left out)."""
    found: list[dict[str, Any]] = []
    for start in range(0, len(invoice_ids), 100):
        chunk = invoice_ids[start : start + 100]
        found += await read_all(erp, "/erp/v1/invoices", {"invoice_id": chunk})
    return found
