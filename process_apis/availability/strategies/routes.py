from __future__ import annotations

import re

from litestar import Controller, delete, get, put
from litestar.di import NamedDependency
from litestar.params import JSONBody

from process_apis.availability import clock
from process_apis.availability.strategies import repository as repo
from process_apis.availability.strategies.schemas import (
    MAX_DISTANCE,
    ChannelStrategy,
    ChannelStrategyIn,
    Location,
    LocationIn,
    RegionIn,
    RegionOut,
)
from shared.auth.litestar_auth import requires
from shared.db import Database
from shared.models import (
    ID_PATTERN,
    CursorParam,
    IdParam,
    LimitParam,
    Page,
)
from shared.paging import decode_cursor, keyset_page
from shared.problems import problem_responses
from shared.refusals import Refusal


def _check_ids(what: str, values: list[str]) -> None:
    bad = [v for v in values if not re.fullmatch(ID_PATTERN, v) or len(v) > 64]
    if bad:
        raise Refusal(422, "invalid-identifier", f"{what}: not location or region ids: {bad[:5]}.")


class StrategyController(Controller):
    path = "/availability/v1"
    tags = ["strategies"]

    @get(
        "/channels/{channel:str}/strategy",
        operation_id="getChannelStrategy",
        summary="How a channel's lines choose warehouses (most_stock when not configured)",
        responses=problem_responses(),
        **requires("inventory:admin"),
    )
    async def get_strategy(
        self, channel: IdParam, db: NamedDependency[Database]
    ) -> ChannelStrategy:
        async with db.read() as conn:
            return await repo.read_strategy(conn, channel)

    @put(
        "/channels/{channel:str}/strategy",
        operation_id="putChannelStrategy",
        summary="Set a channel's warehouse strategy",
        responses=problem_responses(422),
        **requires("inventory:admin"),
    )
    async def put_strategy(
        self, channel: IdParam, data: JSONBody[ChannelStrategyIn], db: NamedDependency[Database]
    ) -> ChannelStrategy:
        _check_ids("priority", data.priority)
        _check_ids("eligible_locations", data.eligible_locations or [])
        if data.ranking == "priority" and not data.priority:
            raise Refusal(422, "invalid-strategy", "A priority strategy needs a priority list.")
        async with db.transaction() as tx:
            return await repo.write_strategy(tx.conn, channel, data, clock.now())

    @delete(
        "/channels/{channel:str}/strategy",
        operation_id="deleteChannelStrategy",
        summary="Return a channel to the default strategy (most stock, split)",
        responses=problem_responses(404),
        **requires("inventory:admin"),
    )
    async def delete_strategy(self, channel: IdParam, db: NamedDependency[Database]) -> None:
        async with db.transaction() as tx:
            if not await repo.delete_strategy(tx.conn, channel):
                raise Refusal(404, "strategy-not-found", f"No strategy for {channel}.")

    @put(
        "/locations/{location_id:str}",
        operation_id="putLocation",
        summary="Set the region of a location (used by the nearest strategy)",
        responses=problem_responses(),
        **requires("inventory:admin"),
    )
    async def put_location(
        self, location_id: IdParam, data: JSONBody[LocationIn], db: NamedDependency[Database]
    ) -> Location:
        async with db.transaction() as tx:
            return await repo.put_location(tx.conn, location_id, data.region, clock.now())

    @get(
        "/locations",
        operation_id="listLocations",
        summary="Locations with their regions",
        responses=problem_responses(),
        **requires("inventory:admin"),
    )
    async def list_locations(
        self, db: NamedDependency[Database], cursor: CursorParam = None, limit: LimitParam = 50
    ) -> Page[Location]:
        async with db.read() as conn:
            found = await repo.list_locations(conn, decode_cursor(cursor) or "", limit + 1)
        return keyset_page(found, limit, key=lambda loc: loc.location_id)

    @put(
        "/regions/{region:str}",
        operation_id="putRegion",
        summary="Set the distances from a region to others",
        responses=problem_responses(422),
        **requires("inventory:admin"),
    )
    async def put_region(
        self, region: IdParam, data: JSONBody[RegionIn], db: NamedDependency[Database]
    ) -> RegionOut:
        _check_ids("distances", list(data.distances))
        if any(not 0 <= d <= MAX_DISTANCE for d in data.distances.values()):
            raise Refusal(422, "invalid-distance", f"Distances are between 0 and {MAX_DISTANCE}.")
        async with db.transaction() as tx:
            return await repo.put_region(tx.conn, region, dict(data.distances))

    @get(
        "/regions/{region:str}",
        operation_id="getRegion",
        summary="The distances from a region to others",
        responses=problem_responses(),
        **requires("inventory:admin"),
    )
    async def get_region(self, region: IdParam, db: NamedDependency[Database]) -> RegionOut:
        async with db.read() as conn:
            return await repo.read_region(conn, region)
