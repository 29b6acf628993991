from __future__ import annotations

from typing import Any

import httpx
from litestar.testing import AsyncTestClient


async def graphql(
    client: AsyncTestClient[Any],
    query: str,
    token: str | None,
    variables: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    sent = dict(headers or {})
    if token is not None:
        sent["Authorization"] = f"Bearer {token}"
    return await client.post(
        "/graphql", json={"query": query, "variables": variables or {}}, headers=sent
    )


def answer(response: httpx.Response) -> dict[str, Any]:
    """The body without ``extensions`` (the query's cost, limits/): data and errors."""
    body: dict[str, Any] = response.json()
    body.pop("extensions", None)
    return body
