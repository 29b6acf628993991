from __future__ import annotations

from typing import Annotated, Literal

from litestar import Controller, get, post
from litestar.di import NamedDependency
from litestar.params import JSONBody, QueryParameter

from process_apis.availability.reconciliation.job import Reconciler
from process_apis.availability.reconciliation.schemas import (
    ReconciliationException,
    ResolveIn,
    RunIn,
    RunReport,
)
from process_apis.availability.reconciliation.service import (
    get_exception,
    list_exceptions,
    resolve_exception,
)
from shared.auth.litestar_auth import requires
from shared.auth.principal import Principal
from shared.db import Database
from shared.models import (
    CursorParam,
    IdParam,
    LimitParam,
    Page,
    SkuListQuery,
)
from shared.paging import decode_cursor, keyset_page
from shared.problems import problem_responses
from shared.refusals import Refusal

StatusQuery = Annotated[
    Literal["open", "resolved"] | None, QueryParameter(name="status", required=False)
]


def _not_found(exception_id: str) -> Refusal:
    return Refusal(
        404, "reconciliation-exception-not-found", f"No reconciliation exception {exception_id}."
    )


class ReconciliationController(Controller):
    path = "/availability/v1/reconciliation"
    tags = ["reconciliation"]

    @get(
        "/exceptions",
        operation_id="listReconciliationExceptions",
        summary="Reconciliation exceptions (differences between ERP, WMS and projection)",
        responses=problem_responses(),
        **requires("inventory:admin"),
    )
    async def list_exceptions(
        self,
        db: NamedDependency[Database],
        status: StatusQuery = None,
        sku: SkuListQuery = (),  # type: ignore[assignment]
        cursor: CursorParam = None,
        limit: LimitParam = 50,
    ) -> Page[ReconciliationException]:
        found = await list_exceptions(db, status, list(sku), decode_cursor(cursor), limit + 1)
        return keyset_page(found, limit, key=lambda e: e.exception_id)

    @get(
        "/exceptions/{exception_id:str}",
        operation_id="getReconciliationException",
        summary="One reconciliation exception with its evidence",
        responses=problem_responses(404),
        **requires("inventory:admin"),
    )
    async def get_exception(
        self, exception_id: IdParam, db: NamedDependency[Database]
    ) -> ReconciliationException:
        found = await get_exception(db, exception_id)
        if found is None:
            raise _not_found(exception_id)
        return found

    @post(
        "/exceptions/{exception_id:str}/resolve",
        operation_id="resolveReconciliationException",
        summary="Resolve a reconciliation exception with a reason",
        status_code=200,
        responses=problem_responses(404),
        **requires("inventory:admin"),
    )
    async def resolve(
        self,
        exception_id: IdParam,
        data: JSONBody[ResolveIn],
        db: NamedDependency[Database],
        principal: NamedDependency[Principal],
    ) -> ReconciliationException:
        found = await resolve_exception(db, exception_id, data.reason, principal.client_id)
        if found is None:
            raise _not_found(exception_id)
        return found

    @post(
        "/runs",
        operation_id="runReconciliation",
        summary="Reconcile ERP, WMS and the projection now",
        status_code=200,  # an action answering its report; running it twice is harmless
        responses=problem_responses(503),
        **requires("inventory:admin"),
    )
    async def run(
        self, data: JSONBody[RunIn], reconciler: NamedDependency[Reconciler]
    ) -> RunReport:
        """Compares every (sku, location) known to any of the three. The body may
        override the settlement window and threshold for this run (``{}`` keeps the
        service's settings)."""
        return await reconciler.run(data.settlement_window_seconds, data.threshold)
