"""Canonical value types shared by every contract (section 9 of the architecture)."""

from __future__ import annotations

from typing import Annotated, Generic, TypeVar

import msgspec

from shared.refusals import Refusal

T = TypeVar("T")

SKU_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._\-]*$"
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:\-]*$"
CURSOR_PATTERN = r"^[A-Za-z0-9_\-]*$"  # unpadded base64url (shared.paging)

Sku = Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=SKU_PATTERN)]
Identifier = Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=ID_PATTERN)]
# The strict decoder refuses U+0000 in any JSON string (400): a Name says so, so that
# every schema-valid name is one the service takes.
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=200, pattern=r"^[^\u0000]+$")]
# Free text a person reads (reasons, notes, address lines): no control characters, so
# every schema-valid value is one the strict decoder takes (it refuses U+0000).
PRINTABLE_PATTERN = r"^[^\u0000-\u001f\u007f]+$"
Text = Annotated[str, msgspec.Meta(min_length=1, max_length=200, pattern=PRINTABLE_PATTERN)]
Quantity = Annotated[int, msgspec.Meta(ge=1, le=1_000_000_000)]
AmountMinor = Annotated[int, msgspec.Meta(ge=0, le=10**15)]
Currency = Annotated[str, msgspec.Meta(pattern=r"^[A-Z]{3}$", examples=["USD"])]
Limit = Annotated[int, msgspec.Meta(ge=1, le=500)]


class Money(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    amount_minor: AmountMinor
    currency: Currency


class MoneyTotal(msgspec.Struct, frozen=True):
    """A sum of many amounts (a customer's balance, exposure, unapplied credit): Money's
    shape, wider than one document's 10^15 bound."""

    amount_minor: Annotated[int, msgspec.Meta(ge=0, le=10**18)]
    currency: Currency


class Page(msgspec.Struct, Generic[T]):
    """A keyset page. ``total_count`` (how many match the filter, over every page) is
    only filled when the list is asked for it (``?count=true``); absent otherwise, so
    a list that never counts answers as it always did."""

    items: list[T]
    next_cursor: str | None = None
    total_count: int | msgspec.UnsetType = msgspec.UNSET


# Parameter flavours of the same rules (query and path parameters are validated and
# documented from Litestar's Parameter, not from msgspec.Meta).
from litestar.params import Parameter, ParameterKwarg, QueryParameter  # noqa: E402

SkuParam = Annotated[str, Parameter(min_length=1, max_length=64, pattern=SKU_PATTERN)]
IdParam = Annotated[str, Parameter(min_length=1, max_length=64, pattern=ID_PATTERN)]
LimitParam = Annotated[int, Parameter(ge=1, le=500, description="Page size.")]
CursorParam = Annotated[
    str | None,
    Parameter(
        required=False,
        max_length=200,
        pattern=CURSOR_PATTERN,
        description="Opaque cursor from next_cursor.",
    ),
]


def query_filter(
    pattern: str,
    *,
    name: str | None = None,
    description: str | None = None,
    many: bool = False,
    required: bool = False,
    min_items: int | None = None,
) -> ParameterKwarg:
    """A query filter on identifiers (``pattern`` is ``ID_PATTERN`` or ``SKU_PATTERN``):
    one value (``?warehouse_id=W1``), or with ``many`` a repeatable one (``?sku=A&sku=B``,
    at most 100) whose item rules are spelled out for the OpenAPI document (Litestar
    enforces them from the item type). Declare an optional one with a default (``None``,
    or ``()`` for ``many``)."""
    if many:
        items = {"type": "string", "minLength": 1, "maxLength": 64, "pattern": pattern}
        return QueryParameter(
            name=name,
            required=required,
            description=description,
            min_items=min_items,
            max_items=100,
            schema_extra={"items": items},
        )
    return QueryParameter(
        name=name,
        required=required,
        description=description,
        min_length=1,
        max_length=64,
        pattern=pattern,
    )


CountParam = Annotated[
    bool,
    QueryParameter(
        name="count",
        description="true: fill total_count, how many match the filter over every page.",
    ),
]
SkuListQuery = Annotated[list[Sku], query_filter(SKU_PATTERN, name="sku", many=True)]
OrderIdListQuery = Annotated[list[Identifier], query_filter(ID_PATTERN, name="order_id", many=True)]


# A batch item's own key, as the ``Idempotency-Key`` header takes it
# (``shared.idempotency``): the item is answered as its single call with that header.
ItemKey = Annotated[str, msgspec.Meta(min_length=1, max_length=255, pattern=r"^[\x21-\x7e]+$")]


class ItemRefusal(msgspec.Struct):
    """Why one item of a batch was refused: the problem its single call would answer."""

    type: str
    status: int
    detail: str

    @classmethod
    def of(cls, refusal: Refusal) -> ItemRefusal:
        return cls(refusal.type, refusal.status, refusal.detail)
