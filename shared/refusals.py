"""The one way to refuse a request: raise a ``Refusal``.

A refusal is a domain fact (the stock is short, the order has shipped, the key was
reused with another payload) that carries how the caller is told: the HTTP status,
the stable problem slug (the problem's ``type`` is ``/problems/<slug>``), a detail
safe to show, and optional extra members and headers. Ports, adapters, repositories,
services and flows raise it; nothing below the routes picks an HTTP response.
``shared.problems`` renders every refusal as RFC 9457 ``application/problem+json``
in one handler (and the allocation fast path with the same function), so the answer
to a refusal does not depend on where it was raised (decision 0001, amended).

Two ways to state one::

    raise Refusal(409, "order-shipped", f"Order {order_id} has shipped and cannot be cancelled.")

    class OverShipment(WmsError):  # a CatalogRefusal: the class fixes the answer
        status, slug = 409, "over-shipment"

    raise OverShipment(f"More {sku} than remains open.")
"""

from __future__ import annotations

from typing import Any


class Refusal(Exception):
    """A refusal of the request, with the answer the caller gets."""

    status: int
    slug: str

    def __init__(
        self,
        status: int,
        slug: str,
        detail: str,
        *,
        title: str | None = None,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.slug = slug
        self.detail = detail
        self.title = title
        self.headers = headers
        self.extra = extra

    @property
    def status_code(self) -> int:
        """The status under the name HTTP exceptions (and ``Refused``) give it."""
        return self.status

    @property
    def type(self) -> str:
        """The problem's stable ``type`` URI."""
        return f"/problems/{self.slug}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.status}, {self.slug!r}, {self.detail!r})"


class CatalogRefusal(Refusal):
    """A refusal whose class fixes the status and slug: one entry of a port's or a
    service's catalogue, raised with its detail only."""

    status = 422
    slug = "unprocessable"

    def __init__(
        self,
        detail: str,
        *,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(type(self).status, type(self).slug, detail, headers=headers, extra=extra)
