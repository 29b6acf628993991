"""Channel rules contract: ring-fences and caps per sku."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec

from process_apis.availability.schemas import Channel, CustomerGroup
from shared.models import Sku

RuleKind = Literal["fence", "cap"]
# A rule of zero units is no rule: delete it instead.
RuleQuantity = Annotated[int, msgspec.Meta(ge=1, le=1_000_000_000)]
Percent = Annotated[int, msgspec.Meta(ge=1, le=100)]


class ChannelRuleIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """``fence`` keeps ``quantity`` units (or ``percent`` of the sku's sellable stock)
    for one channel or one customer group: nobody else may take them. ``cap`` limits
    what one channel may hold at once (allocated and held) to ``quantity`` units or
    ``percent`` of the sellable stock. Exactly one of quantity/percent; a fence names
    exactly one of channel/customer_group; a cap names a channel."""

    sku: Sku
    kind: RuleKind
    channel: Channel | None = None
    customer_group: CustomerGroup | None = None
    quantity: RuleQuantity | None = None
    percent: Percent | None = None


class ChannelRule(msgspec.Struct, kw_only=True):
    rule_id: str
    sku: str
    kind: RuleKind
    channel: str | None
    customer_group: str | None
    quantity: int | None
    percent: int | None
    updated_at: datetime
