"""RFC 9457 answers sent straight from the ASGI layer (no Litestar below it)."""

from __future__ import annotations

import msgspec
from litestar.types import Send

from shared.problems import PROBLEM_MEDIA_TYPE, problem_body


async def send_problem(
    send: Send,
    status: int,
    detail: str,
    *,
    slug: str | None = None,
    instance: str | None = None,
    headers: dict[str, str] | None = None,
) -> None:
    body = msgspec.json.encode(problem_body(status, detail, slug=slug, instance=instance))
    raw_headers = [
        (b"content-type", PROBLEM_MEDIA_TYPE.encode()),
        (b"content-length", str(len(body)).encode()),
        (b"cache-control", b"no-store"),
    ]
    for name, value in (headers or {}).items():
        raw_headers.append((name.lower().encode("latin-1"), value.encode("latin-1")))
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})
