from __future__ import annotations

from typing import Any

from litestar import Controller, Request, Response, get, post
from litestar.di import NamedDependency
from litestar.params import JSONBody

from process_apis.availability.allocations import repository as repo
from process_apis.availability.allocations import service
from process_apis.availability.allocations.batch_call import allocate_each
from process_apis.availability.allocations.batcher import AllocationBatcher
from process_apis.availability.allocations.fills import fill
from process_apis.availability.allocations.line_releases import release_lines
from process_apis.availability.allocations.schemas import (
    AllocationBatch,
    AllocationBatchIn,
    Fill,
    FillBatch,
    FillBatchIn,
    FillBatchResult,
    FillIn,
    LineReleasesIn,
)
from process_apis.availability.ownership import for_customer, visible_to
from process_apis.availability.schemas import Allocation, AllocationIn
from shared.auth.litestar_auth import requires
from shared.auth.principal import Principal
from shared.db import Database, Tx
from shared.idempotency import IdempotencyKey, IdempotencyStore, item_outcomes
from shared.models import IdParam
from shared.problems import problem_responses

MAX_BATCH_BODY_BYTES = 1024 * 1024  # 100 allocations of a few KiB each


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

    @post(
        "/batch",
        operation_id="createAllocations",
        summary="Allocate up to 100 orders in one call, each as its single call would",
        status_code=200,
        request_max_body_size=MAX_BATCH_BODY_BYTES,
        responses=problem_responses(413, 422),
        **requires("inventory:write"),
    )
    async def create_allocations(
        self,
        data: JSONBody[AllocationBatchIn],
        allocation_batcher: NamedDependency[AllocationBatcher],
        request: Request[Principal, Any, Any],
    ) -> AllocationBatch:
        """An order file's allocations in one call. Each is allocated as ``POST
        /availability/v1/allocations`` with ``Idempotency-Key: <idempotency_key>``
        would allocate it (a key seen before, by either endpoint, replays its answer),
        the batch's items applied together, and answered in the batch's order:
        ``status`` (201) with the ``allocation``, or its ``refusal`` (403 another
        customer's, 409 insufficient stock under `reject` with the short lines in
        ``errors``, 422 a key reused with another request). One item's refusal changes
        nothing of the others. Keys repeated within the batch are 422
        ``duplicate-idempotency-key`` before anything is allocated."""
        return await allocate_each(allocation_batcher, request.user, data.allocations)

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
        async with db.lookup() as conn:
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

    @post(
        "/{allocation_id:str}/fill",
        operation_id="fillAllocation",
        summary="Allocate more to the allocation's backordered lines",
        description=(
            "Without `lines` (or without a body), every line's whole backorder. Under the allocation's "
            "policy, channel and customer group, with the warehouse strategy and "
            "ring-fences of a new allocation: `ship_complete` fills every requested unit "
            "or none, `partial` and `reject` fill what there is. `filled` is what this "
            "call allocated per location (empty when nothing could be). 422 "
            "`/problems/fill-exceeds-backorder` when a line asks more than it has "
            "backordered, 409 `/problems/allocation-released` once released."
        ),
        status_code=200,
        responses=problem_responses(404, 409, 422),
        **requires("inventory:write"),
    )
    async def fill_allocation(
        self,
        allocation_id: IdParam,
        idempotency: NamedDependency[IdempotencyStore],
        principal: NamedDependency[Principal],
        idempotency_key: IdempotencyKey,
        data: JSONBody[FillIn | None] = None,
    ) -> Response[Fill]:
        asked = data or FillIn()  # no body: every backorder, like {}

        async def effect(tx: Tx) -> tuple[int, Fill]:
            bound = principal.customer_id
            return 200, await fill(tx, allocation_id, asked, idempotency_key, bound_to=bound)

        return await idempotency.run_once(
            client_id=principal.client_id,
            key=idempotency_key,
            payload={"allocation_id": allocation_id, "fill": asked},
            effect=effect,
        )

    @post(
        "/fills/batch",
        operation_id="fillAllocations",
        summary="Fill up to 100 allocations' backorders in one call, each as its single call would",
        status_code=200,
        request_max_body_size=MAX_BATCH_BODY_BYTES,
        responses=problem_responses(413, 422),
        **requires("inventory:write"),
    )
    async def fill_allocations(
        self,
        data: JSONBody[FillBatchIn],
        idempotency: NamedDependency[IdempotencyStore],
        principal: NamedDependency[Principal],
    ) -> FillBatch:
        """The backorders waiting for a sku's new stock, filled in one call. Each item
        is filled as ``POST /availability/v1/allocations/{allocation_id}/fill`` with
        ``Idempotency-Key: <idempotency_key>`` would fill it (a key seen before, by
        either endpoint, replays its answer), in the batch's order and in one
        transaction, and answered in that order: ``status`` (200) with the ``fill``, or
        its ``refusal`` (404 unknown or another customer's allocation, 409 released,
        422 more than backordered or a key reused with another request). One item's
        refusal changes nothing of the others. Keys repeated within the batch are 422
        ``duplicate-idempotency-key`` before anything is filled."""
        items = data.fills
        asked = [item.fill or FillIn() for item in items]
        keyed = [
            (item.idempotency_key, {"allocation_id": item.allocation_id, "fill": fill})
            for item, fill in zip(items, asked, strict=True)
        ]

        async def effect(tx: Tx, n: int) -> tuple[int, Fill]:
            item = items[n]
            bound = principal.customer_id
            return 200, await fill(
                tx, item.allocation_id, asked[n], item.idempotency_key, bound_to=bound
            )

        answers = await idempotency.run_each_once(
            client_id=principal.client_id, items=keyed, effect=effect
        )
        return FillBatch(
            [
                FillBatchResult(key, status=None if why else 200, fill=done, refusal=why)
                for (key, _), (done, why) in zip(keyed, item_outcomes(answers, Fill), strict=True)
            ]
        )

    @post(
        "/{allocation_id:str}/line-releases",
        operation_id="releaseAllocationLines",
        summary="Give back part of the lines: allocated units, backordered units",
        description=(
            "Per sku: `release` allocated, unshipped units (from `location_id` first) "
            "back to available-to-promise, `backorder` of them backordered again for a "
            "later fill (a short pick), `cancel_backordered` backordered units no "
            "longer wanted. Every line as asked or nothing: 409 "
            "`/problems/release-exceeds-line` names the lines asking more than is open "
            "or backordered. The whole-allocation release stays `POST .../release`."
        ),
        status_code=200,
        responses=problem_responses(404, 409, 422),
        **requires("inventory:write"),
    )
    async def release_allocation_lines(
        self,
        allocation_id: IdParam,
        data: JSONBody[LineReleasesIn],
        idempotency: NamedDependency[IdempotencyStore],
        principal: NamedDependency[Principal],
        idempotency_key: IdempotencyKey,
    ) -> Response[Allocation]:
        async def effect(tx: Tx) -> tuple[int, Allocation]:
            bound = principal.customer_id
            return 200, await release_lines(
                tx, allocation_id, data, idempotency_key, bound_to=bound
            )

        return await idempotency.run_once(
            client_id=principal.client_id,
            key=idempotency_key,
            payload={"allocation_id": allocation_id, "release": data},
            effect=effect,
        )
