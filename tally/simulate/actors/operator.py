"""The operator: reviews orders held for credit and releases them."""

from __future__ import annotations

from tally.simulate.api import Party
from tally.simulate.journal import Journal
from tally.simulate.plan import Day


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
        for order in held:
            order_id = order["order_id"]
            answer = await self.staff.post(
                f"/orders/v1/orders/{order_id}/release-hold",
                {"reason": "reviewed by the credit desk"},
                key=f"sim-release-{order_id}",
            )
            if answer.status_code == 200:
                released += 1
                self.journal.outcomes["credit_holds_released"] += 1
            elif answer.status_code != 409:
                self.journal.failed("release hold", answer.status_code, answer.text)
        return released
