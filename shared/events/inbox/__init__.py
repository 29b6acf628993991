"""Inbox and consumer loop.

Every event applies at most once: its id is recorded in the inbox in the same
transaction as the handler's effects, and a second delivery of the id is a duplicate.

Ordering is declared per event type (``ordered_types``):

- an ORDERED type applies strictly in ``sequence`` order per ``(source, subject)``:
  ``sequence <= last applied`` is acknowledged without effect (``stale``); a gap
  (``sequence > last + 1``) is parked: held in the consumer's waiting room, which
  applies it as soon as its predecessor applies in this process, and left pending on
  the bus with a short, growing delay (for a predecessor applied by another process,
  or after a restart), up to ``max_parks`` deliveries, then dead-lettered with
  "sequence gap never filled"; ``sequence == last + 1`` applies and becomes the last
  applied;
- an UNORDERED type (effects that commute, e.g. one invoice per shipment) is only
  deduplicated by event id; no sequence is checked or recorded.

A handler failure is never acknowledged: the entry is left pending and redelivered
after ``min(cap, base * 2**(n - 1)) * jitter`` (jitter uniform in [0.5, 1]) without
blocking the entries behind it, and after ``max_deliveries`` failed deliveries it moves
to the stream's dead letters with the exception's type, message and a short traceback.
A handler that cannot apply an event *yet* (a dependency behind or unreachable) raises
``NotYet`` (a downstream's 503 counts as one): retried with the same backoff, but
counted against ``max_parks`` like a gap. Deliveries lost to a crashed consumer
(reclaimed after the visibility timeout) count as failed ones, so an event that kills
its consumer ends in the dead letters too.

Events of handlers without a prepare step (``ApplyOnly``) apply in runs, several per
transaction; a run whose handler raises is rolled back and redone around the failing
event, whose exception is its delivery's own failure. A handler whose prepare step is
a call to another service may prepare a bus batch's events in one call
(``PreparesTogether.prepare_many``); each still applies in its own transaction.

The modules: ``outcomes`` (outcomes and metrics), ``policy`` (the retry policy),
``tables`` (the inbox tables), ``handlers`` (the handler protocol), ``apply`` (the
transactions and the ordering check), ``waiting_room`` (``WaitingRoom``), ``parking``
(parks, retries and dead letters) and ``consumer`` (``EventConsumer``, the loop).
"""

from shared.events.inbox.apply import Gap, RunStart, standing, subject_key
from shared.events.inbox.consumer import EventConsumer
from shared.events.inbox.handlers import (
    ApplyOnly,
    EventHandler,
    NotYet,
    PreparesTogether,
    is_not_yet,
)
from shared.events.inbox.outcomes import (
    APPLIED,
    DEAD_LETTERED,
    DUPLICATE,
    EVENTS_HANDLED,
    EVENTS_LAG,
    EVENTS_OLDEST_PENDING,
    EVENTS_PENDING,
    HANDLER_SECONDS,
    IGNORED,
    PARKED,
    RETRIED,
    STALE,
)
from shared.events.inbox.parking import failure_reason
from shared.events.inbox.policy import RetryPolicy, retry_policy
from shared.events.inbox.tables import InboxTables, inbox_tables
from shared.events.inbox.waiting_room import WaitingRoom

__all__ = [
    "APPLIED",
    "DEAD_LETTERED",
    "DUPLICATE",
    "EVENTS_HANDLED",
    "EVENTS_LAG",
    "EVENTS_OLDEST_PENDING",
    "EVENTS_PENDING",
    "HANDLER_SECONDS",
    "IGNORED",
    "PARKED",
    "RETRIED",
    "STALE",
    "ApplyOnly",
    "EventConsumer",
    "EventHandler",
    "Gap",
    "InboxTables",
    "NotYet",
    "PreparesTogether",
    "RetryPolicy",
    "RunStart",
    "WaitingRoom",
    "failure_reason",
    "inbox_tables",
    "is_not_yet",
    "retry_policy",
    "standing",
    "subject_key",
]
