"""Customer service's entry point: ``customer(id)`` for a ``portal:staff`` token bound
to no customer. Anyone else gets its own customer through it or nothing (null, as for
an unknown id), so no query shape reaches another customer."""

from __future__ import annotations

import strawberry

from experience_apis.portal.context import PortalContext
from experience_apis.portal.upstream import well_formed
from experience_apis.portal.viewer import Customer, load_customer
from shared.models import Identifier


async def resolve_customer(
    info: strawberry.Info[PortalContext, None], id: strawberry.ID
) -> Customer | None:
    if not well_formed(str(id), Identifier):
        return None
    return await load_customer(info, str(id))
