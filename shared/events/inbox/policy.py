"""When a delivery that did not apply comes back: the failure backoff, the gap
backoff, and how many of each before the dead letters."""

from __future__ import annotations

import random
from dataclasses import dataclass, replace

from shared.events.bus import DEFAULT_MAX_DELIVERIES
from shared.settings import Settings


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_deliveries: int = DEFAULT_MAX_DELIVERIES  # failed deliveries before the dead letters
    base_seconds: float = 0.2
    cap_seconds: float = 30.0
    max_parks: int = 100  # gap (or NotYet) deliveries before the dead letters
    # A parked gap comes back after 0.1 s doubling to 5 s: the waiting room applies it
    # as soon as its predecessor applies in this process; the bus's redelivery is for
    # a predecessor applied by another process of the group, or after a restart.
    park_base_seconds: float = 0.1
    park_cap_seconds: float = 5.0

    def retry_delay(self, failures: int, rng: random.Random) -> float:
        """Backoff after the ``failures``-th failed delivery, with jitter in [0.5, 1]."""
        nominal = min(self.cap_seconds, self.base_seconds * 2.0 ** max(failures - 1, 0))
        return nominal * rng.uniform(0.5, 1.0)

    def park_delay(self, parks: int, rng: random.Random) -> float:
        nominal = min(self.park_cap_seconds, self.park_base_seconds * 2.0 ** max(parks - 1, 0))
        return nominal * rng.uniform(0.5, 1.0)

    def outlasting(self, visibility_timeout: float) -> RetryPolicy:
        """This policy, with ``max_parks`` raised (never lowered) so that a parked gap
        waits, even at the shortest jitter, more than twice the bus's visibility
        timeout: a predecessor held by a consumer that died comes back after one
        timeout, and must not find its successor dead-lettered as "gap never filled".
        The bus caps each delay at the timeout."""
        waited, parks = 0.0, 0
        while waited <= 2 * visibility_timeout:
            parks += 1
            nominal = min(self.park_cap_seconds, self.park_base_seconds * 2.0 ** (parks - 1))
            waited += 0.5 * min(nominal, visibility_timeout)
        # The max_parks-th delivery is dead-lettered instead of parked again.
        return replace(self, max_parks=max(self.max_parks, parks + 1))


def retry_policy(settings: Settings) -> RetryPolicy:
    """The service's policy from its settings; the gap budget outlasts the bus's
    visibility timeout (see ``RetryPolicy.outlasting``)."""
    return RetryPolicy(
        max_deliveries=settings.events_max_deliveries,
        base_seconds=settings.events_retry_base_seconds,
        cap_seconds=settings.events_retry_cap_seconds,
        max_parks=settings.events_max_parks,
    ).outlasting(settings.bus_visibility_timeout)
