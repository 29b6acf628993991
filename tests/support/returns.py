"""Return authorizations at the WMS (ADR 0032): a return is received only against an
RMA the WMS knows, so a test that receives one registers its RMA first, as the order
service does (``PUT /wms/v1/return-authorizations/{rma_id}``)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx


def authorize_return(
    wms: httpx.Client,
    order_id: str,
    lines: Iterable[tuple[str, int]],
    *,
    rma_id: str | None = None,
    expires_at: datetime | None = None,
    status: str = "authorized",
) -> str:
    """PUTs an RMA for ``lines`` (sku, quantity) of ``order_id`` (expiring in 30 days
    unless said) and answers its id. ``wms`` is any client with ``wms:write``."""
    rma_id = rma_id or f"RMA-{uuid.uuid4().hex[:12]}"
    body: dict[str, Any] = {
        "order_id": order_id,
        "lines": [{"sku": sku, "quantity": quantity} for sku, quantity in lines],
        "expires_at": (expires_at or datetime.now(UTC) + timedelta(days=30)).isoformat(),
        "status": status,
    }
    response = wms.put(f"/wms/v1/return-authorizations/{rma_id}", json=body)
    assert response.status_code == 200, response.text
    return rma_id
