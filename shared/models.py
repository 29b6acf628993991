"""Canonical value types shared by every contract (section 9 of the architecture)."""

from __future__ import annotations

import base64
from typing import Annotated, Generic, TypeVar

import msgspec

T = TypeVar("T")

SKU_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._\-]*$"
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:\-]*$"

Sku = Annotated[
    str, msgspec.Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._\-]*$")
]
Identifier = Annotated[
    str, msgspec.Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:\-]*$")
]
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
Quantity = Annotated[int, msgspec.Meta(ge=1, le=1_000_000_000)]
AmountMinor = Annotated[int, msgspec.Meta(ge=0, le=10**15)]
Currency = Annotated[str, msgspec.Meta(pattern=r"^[A-Z]{3}$", examples=["USD"])]
Limit = Annotated[int, msgspec.Meta(ge=1, le=500)]


class Money(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    amount_minor: AmountMinor
    currency: Currency


class Page(msgspec.Struct, Generic[T]):
    items: list[T]
    next_cursor: str | None = None


def encode_cursor(value: str) -> str:
    return base64.urlsafe_b64encode(value.encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> str | None:
    """The key to continue after. A cursor we did not issue is not an error: it is
    just a position in the key order, so paging can never fail on it."""
    if not cursor:
        return None
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        return base64.urlsafe_b64decode(padded.encode()).decode()
    except (ValueError, UnicodeDecodeError):
        return cursor


# Parameter flavours of the same rules (query and path parameters are validated and
# documented from Litestar's Parameter, not from msgspec.Meta).
from litestar.params import Parameter, QueryParameter  # noqa: E402

SkuParam = Annotated[
    str, Parameter(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._\-]*$")
]
IdParam = Annotated[
    str, Parameter(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:\-]*$")
]
LimitParam = Annotated[int, Parameter(ge=1, le=500, description="Page size.")]
CursorParam = Annotated[
    str | None,
    Parameter(
        required=False,
        max_length=200,
        pattern=r"^[A-Za-z0-9_\-]*$",
        description="Opaque cursor from next_cursor.",
    ),
]

_ID_ITEMS = {"type": "string", "minLength": 1, "maxLength": 64, "pattern": ID_PATTERN}
_SKU_ITEMS = {"type": "string", "minLength": 1, "maxLength": 64, "pattern": SKU_PATTERN}

# Repeatable query filters (``?sku=A&sku=B``). Declare them with a default of ``()``;
# the item rules are spelled out for the OpenAPI document, Litestar enforces them.
SkuListQuery = Annotated[
    list[Sku],
    QueryParameter(name="sku", required=False, max_items=100, schema_extra={"items": _SKU_ITEMS}),
]
OrderIdListQuery = Annotated[
    list[Identifier],
    QueryParameter(
        name="order_id", required=False, max_items=100, schema_extra={"items": _ID_ITEMS}
    ),
]
