"""Channels ordering on the day's curve: the B2B portal through GraphQL (its customers'
portal logins), the webshop through REST one order at a time, marketplaces and EDI
partners through REST in order files (``POST /orders/v1/orders/batch``: a partner's
orders gathered and sent together, each under its own key; the orders a system behind
the platform could not take are sent again); carts held and checked out or left to
expire; some orders cancelled after they are placed."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from tally.simulate.api import RETRIED, GraphQLErrors, Party, json_of
from tally.simulate.journal import Journal
from tally.simulate.plan import Day, OrderIntent

AT_ONCE_PER_CHANNEL = 8
CART_TTL_SECONDS = 600
ABANDONED_CART_TTL_SECONDS = 2
UNAVAILABLE_ATTEMPTS = 30
IN_PROGRESS_ATTEMPTS = 10
FILE_CHANNELS = ("marketplace", "edi")
FILE_ORDERS = 25  # a partner's orders per file, sent when its last order is in

PLACE = """mutation($key: String!, $input: PlaceOrderInput!) {
  placeOrder(idempotencyKey: $key, input: $input) {
    __typename ... on OrderPlaced { order { id status } } ... on CreditHold { order { id status } }
    ... on UserError { code message } } }"""
HOLD = """mutation($key: String!, $input: CartHoldInput!) {
  createCartHold(idempotencyKey: $key, input: $input) {
    __typename ... on CartHoldCreated { cartHold { id } } ... on UserError { code message } } }"""
FROM_HOLD = """mutation($key: String!, $holdId: ID!) {
  placeOrderFromHold(idempotencyKey: $key, holdId: $holdId) {
    __typename ... on OrderPlaced { order { id status } } ... on CreditHold { order { id status } }
    ... on UserError { code message } } }"""


class Channels:
    def __init__(
        self,
        day: Day,
        parties: dict[str, Party],
        journal: Journal,
        day_seconds: float,
        advance: Callable[[int], None],
    ) -> None:
        self.day = day
        self.parties = parties
        self.journal = journal
        self.day_seconds = day_seconds
        self.advance = advance
        self.answered_pending: set[str] = set()  # orders whose placement answered 202

    async def run(self) -> None:
        gates = {
            c: asyncio.Semaphore(AT_ONCE_PER_CHANNEL) for c in {i.channel for i in self.day.intents}
        }
        started = time.monotonic()

        async def one(intent: OrderIntent) -> None:
            wait = started + intent.at * self.day_seconds - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            async with gates[intent.channel]:
                await self.place(intent)
            await self.journal.acted_on(len(intent.lines))
            self.advance(len(intent.lines))

        # A partner transmits its files one after another.
        senders = {c.customer_id: asyncio.Lock() for c in self.day.customers}

        async def one_file(file: list[OrderIntent]) -> None:
            wait = started + file[-1].at * self.day_seconds - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            async with senders[file[0].customer_id]:
                await self.place_file(file)
            for intent in file:
                await self.journal.acted_on(len(intent.lines))
                self.advance(len(intent.lines))

        singles, files = files_of(self.day.intents)
        await asyncio.gather(*(one(i) for i in singles), *(one_file(f) for f in files))

    async def place(self, intent: OrderIntent) -> None:
        party = self.parties[intent.customer_id]
        key = f"sim-{self.day.tag}-order-{intent.index}"
        hold_id = None
        if intent.via_cart:
            hold_id = await self._hold(party, intent, key)
            if hold_id is not None and intent.cart_abandoned:
                self.journal.outcomes["cart_abandoned"] += 1
                return  # it expires by itself
        if intent.channel == "b2b_portal":
            order_id = await self._graphql_order(party, intent, key, hold_id)
        else:
            order_id = await self._rest_order(party, intent, key, hold_id)
        if order_id is not None:
            await self._placed(party, intent, key, order_id)

    async def place_file(self, file: list[OrderIntent]) -> None:
        """A partner's orders in one call; those a system behind the platform could not
        take (503, 429) are sent again under their keys, as the partner would."""
        party = self.parties[file[0].customer_id]
        pending = {f"sim-{self.day.tag}-order-{intent.index}": intent for intent in file}
        for attempt in range(UNAVAILABLE_ATTEMPTS):
            items = [
                {"idempotency_key": key, "order": self._rest_body(intent, None)}
                for key, intent in pending.items()
            ]
            answer = await party.post("/orders/v1/orders/batch", {"orders": items})
            if answer.status_code != 200:
                self.journal.failed("order file", answer.status_code, answer.text)
                return
            again: dict[str, OrderIntent] = {}
            results = json_of(answer)["results"]
            for (key, intent), result in zip(pending.items(), results, strict=True):
                refusal = result.get("refusal")
                if refusal is None:
                    order_id = self._rest_placed(result["status"], result["order"])
                    await self._placed(party, intent, key, order_id)
                elif refusal["status"] in RETRIED:
                    again[key] = intent
                elif refusal["status"] in (409, 422):
                    kind = str(refusal["type"]).rsplit("/", 1)[-1]
                    self.journal.outcomes[f"refused_{_outcome(kind)}"] += 1
                else:
                    self.journal.failed("order", refusal["status"], refusal["detail"])
            if not again:
                return
            pending = again
            party.retries += len(again)
            await asyncio.sleep(min(2.0, 0.1 * 2**attempt))
        self.journal.failed("order file", 503, f"{len(pending)} orders never taken")

    async def _placed(self, party: Party, intent: OrderIntent, key: str, order_id: str) -> None:
        self.journal.orders[intent.index] = order_id
        self.journal.placed_lines += len(intent.lines)
        if intent.cancel:
            answer = await self._cancel(party, order_id, key)
            if answer.status_code == 200:
                self.journal.outcomes["cancelled"] += 1
            elif answer.status_code == 404 and order_id in self.answered_pending:
                # Answered 202 (still pending), then refused for good (a ``reject``
                # order short of stock): the platform abandoned it (decision 0026).
                self.journal.outcomes["abandoned_after_202"] += 1
            elif answer.status_code != 409:  # already shipped: too late, as in life
                self.journal.failed("cancel", answer.status_code, answer.text)

    @staticmethod
    async def _cancel(party: Party, order_id: str, key: str) -> Any:
        """The cancel, sent again after its Retry-After while the order is in progress
        (409 ``order-in-progress``: being released, or its backorders being filled)."""
        for _ in range(IN_PROGRESS_ATTEMPTS):
            answer = await party.post(
                f"/orders/v1/orders/{order_id}/cancel", {}, key=f"{key}-cancel"
            )
            if answer.status_code != 409 or "/order-in-progress" not in answer.text:
                break
            await asyncio.sleep(float(answer.headers.get("retry-after", "1")))
        return answer

    def _lines(self, intent: OrderIntent) -> list[dict[str, Any]]:
        return [{"sku": sku, "quantity": quantity} for sku, quantity in intent.lines]

    async def _hold(self, party: Party, intent: OrderIntent, key: str) -> str | None:
        ttl = ABANDONED_CART_TTL_SECONDS if intent.cart_abandoned else CART_TTL_SECONDS
        if intent.channel == "b2b_portal":
            result = await self._mutate(
                party,
                HOLD,
                {
                    "key": f"{key}-cart",
                    "input": {
                        "channel": intent.channel,
                        "lines": self._lines(intent),
                        "ttlSeconds": ttl,
                    },
                },
                "createCartHold",
            )
            if result["__typename"] == "CartHoldCreated":
                return str(result["cartHold"]["id"])
            refusal = _outcome(result.get("code", result["__typename"]))
            self.journal.outcomes[f"cart_refused_{refusal}"] += 1
            return None
        body = {
            "channel": intent.channel,
            "customer_id": intent.customer_id,
            "lines": self._lines(intent),
            "ttl_seconds": ttl,
        }
        answer = await party.post("/availability/v1/holds", body, key=f"{key}-cart")
        if answer.status_code in (200, 201):
            return str(json_of(answer)["hold_id"])
        if answer.status_code == 409:
            self.journal.outcomes["cart_refused_insufficient_stock"] += 1
            return None
        self.journal.failed("hold", answer.status_code, answer.text)
        return None

    async def _graphql_order(
        self, party: Party, intent: OrderIntent, key: str, hold_id: str | None
    ) -> str | None:
        if hold_id is not None:
            result = await self._mutate(
                party, FROM_HOLD, {"key": key, "holdId": hold_id}, "placeOrderFromHold"
            )
        else:
            variables = {
                "key": key,
                "input": {
                    "channel": intent.channel,
                    "lines": self._lines(intent),
                    "policy": "partial",
                },
            }
            result = await self._mutate(party, PLACE, variables, "placeOrder")
        kind = result["__typename"]
        if kind in ("OrderPlaced", "CreditHold"):
            self.journal.outcomes["placed" if kind == "OrderPlaced" else "credit_held"] += 1
            return str(result["order"]["id"])
        self.journal.outcomes[f"refused_{_outcome(result.get('code', kind))}"] += 1
        return None

    async def _mutate(
        self, party: Party, query: str, variables: dict[str, Any], field: str
    ) -> dict[str, Any]:
        """A portal mutation, asked again with the same key while the portal answers
        that a service behind it is unavailable (a restart): a user would click again."""
        result: dict[str, Any] = {}
        for attempt in range(UNAVAILABLE_ATTEMPTS):
            try:
                result = dict((await party.graphql(query, variables))[field])
            except GraphQLErrors as errors:
                if "DOWNSTREAM_UNAVAILABLE" not in errors.codes:
                    raise
                result = {"__typename": "UserError", "code": "UNAVAILABLE"}
            if result.get("code") != "UNAVAILABLE":
                return result
            party.retries += 1
            await asyncio.sleep(min(2.0, 0.1 * 2**attempt))
        return result

    def _rest_body(self, intent: OrderIntent, hold_id: str | None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "customer_id": intent.customer_id,
            "channel": intent.channel,
            "lines": self._lines(intent),
            "policy": "reject" if intent.channel == "edi" and intent.index % 3 == 0 else "partial",
        }
        if hold_id is not None:
            body["hold_id"] = hold_id
        return body

    def _rest_placed(self, status: int, order: dict[str, Any]) -> str:
        """A placement answered 201 or 202: the order's id, counted in the journal."""
        if status == 202:
            self.answered_pending.add(str(order["order_id"]))
        self.journal.outcomes["credit_held" if order["status"] == "on_hold" else "placed"] += 1
        return str(order["order_id"])

    async def _rest_order(
        self, party: Party, intent: OrderIntent, key: str, hold_id: str | None
    ) -> str | None:
        answer = await party.post("/orders/v1/orders", self._rest_body(intent, hold_id), key=key)
        if answer.status_code in (201, 202):
            return self._rest_placed(answer.status_code, json_of(answer))
        if answer.status_code in (409, 422):
            kind = json_of(answer).get("type", "").rsplit("/", 1)[-1]
            self.journal.outcomes[f"refused_{_outcome(kind)}"] += 1
            return None
        self.journal.failed("order", answer.status_code, answer.text)
        return None


def files_of(
    intents: tuple[OrderIntent, ...],
) -> tuple[list[OrderIntent], list[list[OrderIntent]]]:
    """The orders placed one by one, and the partners' files (marketplace and EDI
    orders of one customer, in the day's order, ``FILE_ORDERS`` to a file)."""
    singles: list[OrderIntent] = []
    gathering: dict[str, list[OrderIntent]] = {}
    files: list[list[OrderIntent]] = []
    for intent in intents:
        if intent.channel not in FILE_CHANNELS or intent.via_cart:
            singles.append(intent)
            continue
        file = gathering.setdefault(intent.customer_id, [])
        file.append(intent)
        if len(file) == FILE_ORDERS:
            files.append(gathering.pop(intent.customer_id))
    files.extend(gathering.values())
    return singles, files


def _outcome(refusal: str) -> str:
    """One name per refusal in the journal, whether the portal's code
    (``INSUFFICIENT_STOCK``) or the REST problem's slug (``insufficient-stock``)."""
    return refusal.lower().replace("-", "_")
