"""Return authorizations (RMAs) the order service registers, whole, by PUT: the dock
receives returned goods only against one of them (ADR 0032)."""

from __future__ import annotations

from litestar import Controller, get, put
from litestar.di import NamedDependency
from litestar.params import JSONBody

from shared.auth.litestar_auth import requires
from shared.idempotency import IdempotencyStore
from shared.models import IdParam
from shared.problems import problem_responses
from system_apis.wms.port import RmaNotFound, WmsPort
from system_apis.wms.schemas import ReturnAuthorization, ReturnAuthorizationIn


class ReturnAuthorizationController(Controller):
    path = "/wms/v1/return-authorizations"
    tags = ["returns"]

    @put(
        "/{rma_id:str}",
        operation_id="putReturnAuthorization",
        summary="Register or replace a return authorization (RMA) the dock may receive against",
        responses=problem_responses(409, 422),
        **requires("wms:write"),
    )
    async def put_return_authorization(
        self,
        rma_id: IdParam,
        data: JSONBody[ReturnAuthorizationIn],
        wms: NamedDependency[WmsPort],
        idempotency: NamedDependency[IdempotencyStore],
    ) -> ReturnAuthorization:
        """200 with the stored RMA, whether this PUT created, replaced or repeated it. The
        RMA's order never changes (422 rma-order-mismatch); a line may not authorize
        less than was already received against it, nor be dropped once received
        (409 rma-below-received). ``status`` cancelled closes it to new receipts."""
        async with idempotency.db.transaction() as tx:
            found, _created = await wms.put_return_authorization(tx, rma_id, data)
        return found

    @get(
        "/{rma_id:str}",
        operation_id="getReturnAuthorization",
        summary="Read one return authorization with what was received against it",
        responses=problem_responses(404),
        **requires("wms:read"),
    )
    async def get_return_authorization(
        self, rma_id: IdParam, wms: NamedDependency[WmsPort]
    ) -> ReturnAuthorization:
        found = await wms.get_return_authorization(rma_id)
        if found is None:
            raise RmaNotFound(f"No return authorization {rma_id}.")
        return found
