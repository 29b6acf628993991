from __future__ import annotations

import msgspec
from litestar import Controller, Response, delete, get, post
from litestar.di import NamedDependency
from litestar.params import JSONBody

from process_apis.availability import clock
from process_apis.availability.holds import repository as repo
from process_apis.availability.holds import service
from process_apis.availability.holds.schemas import Hold, HoldConvertIn, HoldIn
from process_apis.availability.ownership import customer_for, visible_to
from process_apis.availability.schemas import Allocation
from shared.auth.litestar_auth import requires
from shared.auth.principal import Principal
from shared.db import Database, Tx
from shared.idempotency import IdempotencyKey, IdempotencyStore
from shared.models import IdParam
from shared.problems import problem_responses


class HoldController(Controller):
    path = "/availability/v1/holds"
    tags = ["holds"]

    @post(
        "/",
        operation_id="createHold",
        summary="Hold stock for a cart or quote until it expires",
        description=(
            "Every line is held or none is (409 `/problems/insufficient-stock`), under "
            "the channel's rules and warehouse strategy. The hold stops counting at "
            "`expires_at`, at once, whether or not anything writes its expiry."
        ),
        responses=problem_responses(403, 409, 422),
        **requires("inventory:write"),
    )
    async def create_hold(
        self,
        data: JSONBody[HoldIn],
        idempotency: NamedDependency[IdempotencyStore],
        principal: NamedDependency[Principal],
        idempotency_key: IdempotencyKey,
    ) -> Response[Hold]:
        owned = data
        customer = customer_for(principal, data.customer_id)
        if customer != data.customer_id:
            owned = msgspec.structs.replace(data, customer_id=customer)

        async def effect(tx: Tx) -> tuple[int, Hold]:
            return 201, await service.place(tx, owned, idempotency_key)

        # The key's fingerprint covers the body as sent (as before holds were owned).
        return await idempotency.run_once(
            client_id=principal.client_id, key=idempotency_key, payload=data, effect=effect
        )

    @get(
        "/{hold_id:str}",
        operation_id="getHold",
        summary="Read one hold",
        responses=problem_responses(404),
        **requires("inventory:read"),
    )
    async def get_hold(
        self, hold_id: IdParam, db: NamedDependency[Database], principal: NamedDependency[Principal]
    ) -> Hold:
        async with db.lookup() as conn:  # one hold and its lines, by key
            found = await repo.load(conn, hold_id, clock.now())
        if found is None or not visible_to(principal.customer_id, found.customer_id):
            raise service.not_found(hold_id)
        return found

    @post(
        "/{hold_id:str}/release",
        operation_id="releaseHold",
        summary="Give the held units back (no change once the hold has ended)",
        status_code=200,
        responses=problem_responses(404),
        **requires("inventory:write"),
    )
    async def release_hold(
        self, hold_id: IdParam, db: NamedDependency[Database], principal: NamedDependency[Principal]
    ) -> Hold:
        async with db.transaction() as tx:
            return await service.release(tx, hold_id, bound_to=principal.customer_id)

    @delete(
        "/{hold_id:str}",
        operation_id="deleteHold",
        summary="Release a hold (same as POST .../release)",
        status_code=200,
        responses=problem_responses(404),
        **requires("inventory:write"),
    )
    async def delete_hold(
        self, hold_id: IdParam, db: NamedDependency[Database], principal: NamedDependency[Principal]
    ) -> Hold:
        async with db.transaction() as tx:
            return await service.release(tx, hold_id, bound_to=principal.customer_id)

    @post(
        "/{hold_id:str}/convert",
        operation_id="convertHold",
        summary="Turn an active hold into the order's allocation, keeping the same units",
        description=(
            "allocation_id = order_id. 409 `/problems/hold-expired` once the hold's "
            "time ran out, `/problems/hold-not-active` when it was released or "
            "converted, `/problems/duplicate-allocation` when the order has one."
        ),
        responses=problem_responses(404, 409, 422),
        **requires("inventory:write"),
    )
    async def convert_hold(
        self,
        hold_id: IdParam,
        data: JSONBody[HoldConvertIn],
        idempotency: NamedDependency[IdempotencyStore],
        principal: NamedDependency[Principal],
        idempotency_key: IdempotencyKey,
    ) -> Response[Allocation]:
        async def effect(tx: Tx) -> tuple[int, Allocation]:
            return 201, await service.convert(
                tx, hold_id, data, idempotency_key, bound_to=principal.customer_id
            )

        return await idempotency.run_once(
            client_id=principal.client_id,
            key=idempotency_key,
            payload={"hold_id": hold_id, "order_id": data.order_id},
            effect=effect,
        )
