from __future__ import annotations

from litestar import Controller, get
from litestar.di import NamedDependency

from process_apis.billing.statements.schemas import Statement
from process_apis.billing.statements.service import StatementService
from shared.auth.litestar_auth import requires
from shared.auth.principal import Principal
from shared.models import IdParam
from shared.problems import problem_responses


class StatementController(Controller):
    path = "/billing/v1/customers"
    tags = ["statements"]

    @get(
        "/{customer_id:str}/statement",
        operation_id="getStatement",
        summary="A customer's statement: documents with the running balance, open invoices",
        responses=problem_responses(404, 502, 503),
        **requires("billing:read"),
    )
    async def get_statement(
        self,
        customer_id: IdParam,
        statements: NamedDependency[StatementService],
        principal: NamedDependency[Principal],
    ) -> Statement:
        """Read from the ERP as of now. Another customer's (or an unknown one): 404."""
        return await statements.statement(principal, customer_id)
