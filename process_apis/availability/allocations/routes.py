from __future__ import annotations

from typing import Any

from litestar import Controller, Request, Response, get, post
from litestar.di import NamedDependency
from litestar.params import JSONBody

from process_apis.availability.allocations import repository as repo
from process_apis.availability.allocations import service
from process_apis.availability.allocations.batcher import AllocationBatcher
from process_apis.availability.ownership import for_customer, visible_to
from process_apis.availability.schemas import Allocation, AllocationIn
from shared.auth.litestar_auth import requires
from shared.auth.principal import Principal
from shared.db import Database
from shared.idempotency import IdempotencyKey
from shared.models import IdParam
from shared.problems import problem_responses


class AllocationController(Controller):
    path = "/availability/v1/allocations"
    tags = ["allocations"]

    @post(
        "/",
        operation_id="createAllocation",
        summary="Allocate an order's lines atomically under its policy",
        description=(
            "Policies: `reject` (default) allocates every line or answers 409 "
            "`/problems/insufficient-stock`; `ship_complete` allocates every line or "
            "none (all backordered); `partial` allocates what there is and backorders "
            "the rest. Locations with the most available-to-promise are used first."
        ),
        responses=problem_responses(403, 409, 422),
        **requires("inventory:write"),
    )
    async def create_allocation(
        self,
        data: JSONBody[AllocationIn],
        allocation_batcher: NamedDependency[AllocationBatcher],
        request: Request[Principal, Any, Any],
        idempotency_key: IdempotencyKey,
    ) -> Response[Allocation]:
        # The principal from the request, not as a dependency: with one dependency
        # Litestar resolves it inline instead of in a task group (the hot path).
        principal = request.user
        return await allocation_batcher.submit(
            principal.client_id, idempotency_key, for_customer(principal, data)
        )

    @get(
        "/{allocation_id:str}",
        operation_id="getAllocation",
        summary="Read one allocation",
        responses=problem_responses(404),
        **requires("inventory:read"),
    )
    async def get_allocation(
        self,
        allocation_id: IdParam,
        db: NamedDependency[Database],
        principal: NamedDependency[Principal],
    ) -> Allocation:
        async with db.read() as conn:
            found = await repo.load(conn, allocation_id)
        if found is None or not visible_to(principal.customer_id, found.customer_id):
            raise service.not_found(allocation_id)
        return found

    @post(
        "/{allocation_id:str}/release",
        operation_id="releaseAllocation",
        summary="Release what is allocated and not shipped",
        status_code=200,
        responses=problem_responses(404),
        **requires("inventory:write"),
    )
    async def release_allocation(
        self,
        allocation_id: IdParam,
        db: NamedDependency[Database],
        principal: NamedDependency[Principal],
    ) -> Allocation:
        async with db.transaction() as tx:
            return await service.release(tx, allocation_id, bound_to=principal.customer_id)
