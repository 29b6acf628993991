"""The day, drawn from a seed: the same seed and options give the same plan (catalog,
stock, customers and every order intent), so a run can be repeated."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field, replace
from typing import Any

CHANNELS = ("b2b_portal", "webshop", "marketplace", "edi")
# Customers per channel: each is an ERP customer with its own OAuth client, bound to it.
CUSTOMERS_PER_CHANNEL = {"b2b_portal": 4, "webshop": 1, "marketplace": 2, "edi": 2}
# Each channel's rate tier (its clients' limits at the gateway).
TIERS = {"b2b_portal": "silver", "webshop": "silver", "marketplace": "gold", "edi": "gold"}
WAREHOUSES = ("WH-EAST", "WH-WEST")
SHORT_PICK_MARGIN = 0.02  # of a hot sku's demand, on top of what the day orders


@dataclass(frozen=True)
class Mix:
    """Shares of the day's orders by channel, and of what happens to them."""

    channels: dict[str, float] = field(
        default_factory=lambda: {
            "b2b_portal": 0.35,
            "webshop": 0.3,
            "marketplace": 0.2,
            "edi": 0.15,
        }
    )
    carts: float = 0.10  # placed from a cart hold
    cart_abandoned: float = 0.30  # of carts: released, never ordered
    cancellations: float = 0.03
    returns: float = 0.06  # of shipped orders
    payments: dict[str, float] = field(
        default_factory=lambda: {
            "full": 0.7,
            "partial": 0.1,
            "over": 0.05,
            "late": 0.1,
            "none": 0.05,
        }
    )
    hot_skus: float = 0.1  # share of skus taking half the demand
    scarce: float = (
        0.4  # of a hot sku's demand, what is on hand at the start (short by mid-morning)
    )
    credit_held_customers: int = 1  # customers whose limit puts their orders on hold


def mix_from(overrides: list[str]) -> Mix:
    """The default mix with ``NAME=VALUE`` overrides: a share (``carts``,
    ``cart_abandoned``, ``cancellations``, ``returns``, ``hot_skus``, ``scarce``), a
    channel's weight (``channel.edi=0.5``) or a payment behaviour's
    (``payment.late=0.2``); ``credit_held_customers`` is a count. ValueError names what
    is wrong."""
    mix = Mix()
    shares: dict[str, Any] = {}
    channels, payments = dict(mix.channels), dict(mix.payments)
    for override in overrides:
        name, sep, text = override.partition("=")
        if not sep:
            raise ValueError(f"{override!r}: expected NAME=VALUE")
        value = float(text)
        if value < 0 or (value > 1 and name != "credit_held_customers"):
            raise ValueError(f"{override!r}: a share is between 0 and 1")
        group, _, key = name.partition(".")
        if group == "channel" and key in channels:
            channels[key] = value
        elif group == "payment" and key in payments:
            payments[key] = value
        elif name == "credit_held_customers":
            shares[name] = int(value)
        elif name in SHARES:
            shares[name] = value
        else:
            known = [*SHARES, "credit_held_customers", *(f"channel.{c}" for c in channels)]
            known += [f"payment.{p}" for p in payments]
            raise ValueError(f"{name!r} is not part of the mix; one of {', '.join(known)}")
    if not any(channels.values()) or not any(payments.values()):
        raise ValueError("at least one channel and one payment behaviour need a weight above 0")
    return replace(mix, channels=channels, payments=payments, **shares)


SHARES = ("carts", "cart_abandoned", "cancellations", "returns", "hot_skus", "scarce")


@dataclass(frozen=True)
class Item:
    sku: str
    name: str
    price_minor: int


@dataclass(frozen=True)
class Customer:
    customer_id: str
    channel: str
    credit_limit_minor: int


@dataclass(frozen=True)
class OrderIntent:
    index: int
    at: float  # 0..1: when in the day (the daily curve)
    channel: str
    customer_id: str
    lines: tuple[tuple[str, int], ...]
    via_cart: bool
    cart_abandoned: bool
    cancel: bool
    returns: bool
    payment: str


@dataclass(frozen=True)
class Receipt:
    """A purchase order's goods arriving: ``at`` in the day, lines to one warehouse."""

    at: float
    warehouse_id: str
    lines: tuple[tuple[str, int], ...]
    asn: bool  # announced ahead (an ASN) or not


@dataclass(frozen=True)
class Day:
    seed: int
    tag: str
    items: tuple[Item, ...]
    hot: frozenset[str]
    customers: tuple[Customer, ...]
    opening_stock: dict[str, dict[str, int]]  # warehouse -> sku -> units
    intents: tuple[OrderIntent, ...]
    receipts: tuple[Receipt, ...]

    @property
    def lines(self) -> int:
        return sum(len(i.lines) for i in self.intents)


def _curve(rng: random.Random) -> float:
    """When an order comes: two humps (morning and afternoon) and bursts."""
    if rng.random() < 0.05:  # a burst: a marketplace promotion at 60 % of the day
        return min(0.999, max(0.0, rng.gauss(0.6, 0.01)))
    hump = 0.3 if rng.random() < 0.55 else 0.7
    return min(0.999, max(0.0, rng.gauss(hump, 0.12)))


def plan_day(seed: int, lines: int, tag: str, mix: Mix | None = None) -> Day:
    """``lines`` order lines (about 3 per order) over ``tag``-named skus and customers."""
    mix = mix or Mix()
    rng = random.Random(seed)
    sku_count = max(20, min(2000, lines // 50))
    items = tuple(
        Item(f"SIM-{tag}-{n:04d}", f"Simulated item {n}", rng.randrange(200, 20_000, 25))
        for n in range(sku_count)
    )
    hot = frozenset(i.sku for i in items[: max(1, int(sku_count * mix.hot_skus))])
    customers = []
    held = mix.credit_held_customers
    for channel in CHANNELS:
        for n in range(CUSTOMERS_PER_CHANNEL[channel]):
            limit = 10**12
            if channel == "b2b_portal" and held > 0:
                limit, held = 1, held - 1  # every order of it goes on credit hold
            customers.append(Customer(f"SIM-{tag}-{channel.upper()}-{n}", channel, limit))
    by_channel = {c: [x for x in customers if x.channel == c] for c in CHANNELS}

    intents: list[OrderIntent] = []
    demand: dict[str, int] = {i.sku: 0 for i in items}
    skus = [i.sku for i in items]
    hot_list = sorted(hot)
    placed = 0
    while placed < lines:
        channel = rng.choices(CHANNELS, weights=[mix.channels[c] for c in CHANNELS])[0]
        customer = rng.choice(by_channel[channel])
        count = min(lines - placed, rng.choice((1, 2, 3, 3, 4, 5)))
        chosen: dict[str, int] = {}
        while len(chosen) < count:
            sku = rng.choice(hot_list) if rng.random() < 0.5 else rng.choice(skus)
            chosen.setdefault(sku, rng.choice((1, 1, 2, 3, 5, 10)))
        for sku, quantity in chosen.items():
            demand[sku] += quantity
        via_cart = channel in ("b2b_portal", "webshop") and rng.random() < mix.carts
        payment = rng.choices(list(mix.payments), weights=list(mix.payments.values()))[0]
        intents.append(
            OrderIntent(
                index=len(intents),
                at=_curve(rng),
                channel=channel,
                customer_id=customer.customer_id,
                lines=tuple(sorted(chosen.items())),
                via_cart=via_cart,
                cart_abandoned=via_cart and rng.random() < mix.cart_abandoned,
                cancel=rng.random() < mix.cancellations,
                returns=rng.random() < mix.returns,
                payment=payment,
            )
        )
        placed += len(chosen)
    intents.sort(key=lambda i: i.at)

    opening, receipts = _stock(demand, hot, mix)
    return Day(
        seed=seed,
        tag=tag,
        items=items,
        hot=hot,
        customers=tuple(customers),
        opening_stock=opening,
        intents=tuple(intents),
        receipts=receipts,
    )


def _stock(
    demand: dict[str, int], hot: frozenset[str], mix: Mix
) -> tuple[dict[str, dict[str, int]], tuple[Receipt, ...]]:
    """Plenty of the long tail; hot skus short at the start, topped up by a purchase
    order in two receipts: an announced partial one mid-day, the rest late (backorders
    wait for them)."""
    opening: dict[str, dict[str, int]] = {w: {} for w in WAREHOUSES}
    receipts: list[Receipt] = []
    late: dict[str, int] = {}
    for sku, wanted in demand.items():
        if wanted == 0:
            continue
        if sku in hot:
            start = math.floor(wanted * mix.scarce)
            # What short picks take off the shelf (one unit in a hundred picks, each
            # backordered again) grows with the day: a fixed 5 left a few of the
            # 250,000-line day's orders waiting for stock that never came.
            late[sku] = wanted - start + 5 + math.ceil(wanted * SHORT_PICK_MARGIN)
        else:
            start = wanted + 10
        east = start // 2 + start % 2
        opening["WH-EAST"][sku] = east
        opening["WH-WEST"][sku] = start - east
    if late:
        partial = {sku: max(1, n // 3) for sku, n in late.items()}
        rest = {sku: n - partial[sku] for sku, n in late.items() if n - partial[sku] > 0}
        receipts.append(Receipt(0.5, "WH-EAST", tuple(sorted(partial.items())), asn=True))
        receipts.append(Receipt(0.8, "WH-WEST", tuple(sorted(rest.items())), asn=False))
    return opening, tuple(receipts)
