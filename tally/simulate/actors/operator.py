"""The operator: reviews orders held for credit and releases them."""

from __future__ import annotations

from tally.simulate.api import Party, json_of
from tally.simulate.journal import Journal
from tally.simulate.plan import Day

RELEASES_PER_CALL = 100


class Operator:
    def __init__(self, day: Day, staff: Party, journal: Journal) -> None:
        self.day = day
        self.staff = staff
        self.journal = journal

    async def release_held(self) -> int:
        released = 0
        ours = {customer.customer_id for customer in self.day.customers}
        # One listing for every customer (a page of 500 per call), not one per customer
        # per pass: the operator's polling stays small whatever the day's length.
        held = [
            order
            for order in await self.staff.pages("/orders/v1/orders", {"status": "on_hold"})
            if order["customer_id"] in ours
        ]
        # The reviewed list in calls of up to 100 (``/hold-releases``), each order
        # answered as its own ``release-hold`` would be.
        for start in range(0, len(held), RELEASES_PER_CALL):
            order_ids = [order["order_id"] for order in held[start : start + RELEASES_PER_CALL]]
            answer = await self.staff.post(
                "/orders/v1/orders/hold-releases",
                {"order_ids": order_ids, "reason": "reviewed by the credit desk"},
            )
            if answer.status_code != 200:
                self.journal.failed("release holds", answer.status_code, answer.text)
                continue
            for result in json_of(answer)["results"]:
                refusal = result.get("refusal")
                if refusal is None:
                    released += 1
                    self.journal.outcomes["credit_holds_released"] += 1
                elif refusal["status"] != 409:  # 409: released or cancelled meanwhile
                    self.journal.failed("release hold", refusal["status"], refusal["detail"])
        return released
