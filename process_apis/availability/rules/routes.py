from __future__ import annotations

from typing import Annotated

from litestar import Controller, delete, get, put
from litestar.di import NamedDependency
from litestar.params import JSONBody

from process_apis.availability import clock
from process_apis.availability.positions.book import PositionBook
from process_apis.availability.rules import repository as repo
from process_apis.availability.rules.schemas import ChannelRule, ChannelRuleIn
from shared.auth.litestar_auth import requires
from shared.db import Database
from shared.models import (
    SKU_PATTERN,
    CursorParam,
    IdParam,
    LimitParam,
    Page,
    query_filter,
)
from shared.paging import decode_cursor, keyset_page
from shared.problems import problem_responses
from shared.refusals import Refusal

SkuFilter = Annotated[str | None, query_filter(SKU_PATTERN, name="sku")]


class ChannelRuleController(Controller):
    path = "/availability/v1/channel-rules"
    tags = ["channel-rules"]

    @get(
        "/",
        operation_id="listChannelRules",
        summary="Ring-fences and caps, optionally of one sku",
        responses=problem_responses(),
        **requires("inventory:admin"),
    )
    async def list_rules(
        self,
        db: NamedDependency[Database],
        sku: SkuFilter = None,
        cursor: CursorParam = None,
        limit: LimitParam = 50,
    ) -> Page[ChannelRule]:
        async with db.read() as conn:
            found = await repo.listed(conn, sku, decode_cursor(cursor) or "", limit + 1)
        return keyset_page(found, limit, key=lambda r: r.rule_id)

    @get(
        "/{rule_id:str}",
        operation_id="getChannelRule",
        summary="Read one channel rule",
        responses=problem_responses(404),
        **requires("inventory:admin"),
    )
    async def get_rule(self, rule_id: IdParam, db: NamedDependency[Database]) -> ChannelRule:
        async with db.read() as conn:
            found = await repo.read(conn, rule_id)
        if found is None:
            raise Refusal(404, "rule-not-found", f"No channel rule {rule_id}.")
        return found

    @put(
        "/{rule_id:str}",
        operation_id="putChannelRule",
        summary="Create or replace a ring-fence or cap",
        description=(
            "Takes effect for the next allocation or hold of the sku: the rule is "
            "written under the sku's position locks, so no allocation decides on a "
            "half-changed rule set."
        ),
        responses=problem_responses(409, 422),
        **requires("inventory:admin"),
    )
    async def put_rule(
        self, rule_id: IdParam, data: JSONBody[ChannelRuleIn], db: NamedDependency[Database]
    ) -> ChannelRule:
        repo.validate(data)
        async with db.transaction() as tx:
            await PositionBook.lock(tx.conn, [data.sku])
            return await repo.write(tx.conn, rule_id, data, clock.now())

    @delete(
        "/{rule_id:str}",
        operation_id="deleteChannelRule",
        summary="Delete a channel rule",
        responses=problem_responses(404),
        **requires("inventory:admin"),
    )
    async def delete_rule(self, rule_id: IdParam, db: NamedDependency[Database]) -> None:
        async with db.transaction() as tx:
            found = await repo.read(tx.conn, rule_id)
            if found is None:
                raise Refusal(404, "rule-not-found", f"No channel rule {rule_id}.")
            await PositionBook.lock(tx.conn, [found.sku])
            await repo.remove(tx.conn, rule_id)
