"""Batched calls to partners: the sales-order sync books orders in batches (one ERP call for up to 100). When the
ERP refuses a batch as a whole because of one order it cannot read, the orders go one
by one, so that only that order waits and the others are booked; an ERP failing (5xx)
is left for the next round."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from process_apis.order_to_ship.flows.erp_sync import ErpSync
from process_apis.order_to_ship.flows.partners import Refused


class ErpRefusingOne:
    """The ERP's batch call as the sync sees it: one order it cannot read makes the
    whole batch a 400; ``failing`` answers 503 to any call."""

    def __init__(self, unreadable: str, failing: bool = False) -> None:
        self.unreadable = unreadable
        self.failing = failing
        self.calls: list[list[str]] = []

    async def put_sales_orders(self, bodies: list[dict[str, Any]]) -> dict[str, str | None]:
        ids = [body["order_id"] for body in bodies]
        self.calls.append(ids)
        if self.failing:
            raise Refused("erp", httpx.Response(503, json={"type": "/problems/unavailable"}))
        if self.unreadable in ids:
            raise Refused("erp", httpx.Response(400, json={"type": "/problems/invalid-request"}))
        return dict.fromkeys(ids)


def sync_with(erp: ErpRefusingOne) -> ErpSync:
    return ErpSync(db=None, partners=erp)  # type: ignore[arg-type]


def bodies(*ids: str) -> list[dict[str, Any]]:
    return [{"order_id": order_id} for order_id in ids]


def test_one_unreadable_order_waits_alone() -> None:
    erp = ErpRefusingOne("SO-2")
    booked = asyncio.run(sync_with(erp)._book(bodies("SO-1", "SO-2", "SO-3")))
    assert booked["SO-1"] is None and booked["SO-3"] is None
    assert booked["SO-2"] is not None and "invalid-request" in booked["SO-2"]
    assert erp.calls == [["SO-1", "SO-2", "SO-3"], ["SO-1"], ["SO-2"], ["SO-3"]]


def test_a_batch_without_trouble_is_one_call() -> None:
    erp = ErpRefusingOne("SO-NONE")
    booked = asyncio.run(sync_with(erp)._book(bodies("SO-1", "SO-2")))
    assert booked == {"SO-1": None, "SO-2": None}
    assert erp.calls == [["SO-1", "SO-2"]]


def test_an_erp_failing_is_raised_for_the_next_round() -> None:
    erp = ErpRefusingOne("SO-NONE", failing=True)
    with pytest.raises(Refused):
        asyncio.run(sync_with(erp)._book(bodies("SO-1", "SO-2")))
    assert erp.calls == [["SO-1", "SO-2"]]


def test_a_release_whose_answer_was_lost_counts_as_sent_until_known() -> None:
    """Only a call that never reached the WMS puts its releases back in the queue (a
    cancel may then hold them back); a lost answer keeps them in flight."""
    from process_apis.order_to_ship.flows.releases import maybe_sent
    from shared.breaker import CircuitOpen
    from shared.http import RetryableStatus
    from shared.problems import ProblemError

    request = httpx.Request("POST", "http://wms.test/wms/v1/fulfillment-orders/batch")

    def gave_up(cause: BaseException) -> ProblemError:
        unreachable = ProblemError(503, "downstream-unavailable", "The wms service is away.")
        unreachable.__cause__ = cause
        return unreachable

    never_sent = [
        CircuitOpen("wms", 5.0),
        httpx.ConnectError("refused", request=request),
        httpx.ConnectTimeout("slow", request=request),
        RetryableStatus(httpx.Response(503, request=request)),
    ]
    maybe = [
        httpx.ReadTimeout("no answer", request=request),
        httpx.RemoteProtocolError("closed mid-answer", request=request),
        httpx.ReadError("reset", request=request),
    ]
    assert [maybe_sent(gave_up(cause)) for cause in never_sent] == [False] * 4
    assert [maybe_sent(gave_up(cause)) for cause in maybe] == [True] * 3
