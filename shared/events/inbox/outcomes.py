"""What became of one delivery (the ``outcome`` label of tally_events_handled_total),
and the consumer's metrics."""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import Counter, Gauge, Histogram

from shared.events.bus import GroupLag

APPLIED = "applied"  # the effects committed with the inbox row
DUPLICATE = "duplicate"  # the event id is in the inbox already: acked, no effect
STALE = "stale"  # ordered, sequence <= last applied: acked, no effect
PARKED = "parked"  # ordered, a gap before it (or NotYet): pending, redelivered later
RETRIED = "retried"  # the handler failed: pending, redelivered after a backoff
DEAD_LETTERED = "dead_lettered"  # moved to the stream's dead letters (and acked)
IGNORED = "ignored"  # no handler for the type: acked

EVENTS_HANDLED = Counter(
    "tally_events_handled_total", "Events consumed, by outcome", ["group", "type", "outcome"]
)
HANDLER_SECONDS = Histogram(
    "tally_event_handler_seconds",
    "Time to handle one delivery (prepare, transaction, retry or dead-letter decision)",
    ["group", "type"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
# Set by the worker that leads (with several workers, /metrics merges the processes'
# samples: these keep the live leader's latest value).
EVENTS_PENDING = Gauge(
    "tally_events_pending",
    "Entries delivered to the group, not yet acked",
    ["group", "stream"],
    multiprocess_mode="livemostrecent",
)
EVENTS_LAG = Gauge(
    "tally_events_lag",
    "Entries of the stream not yet delivered to the group",
    ["group", "stream"],
    multiprocess_mode="livemostrecent",
)
EVENTS_OLDEST_PENDING = Gauge(
    "tally_events_oldest_pending_seconds",
    "Age of the group's oldest unacked entry (0 when none)",
    ["group", "stream"],
    multiprocess_mode="livemostrecent",
)


def record_lag(rows: Iterable[GroupLag]) -> None:
    """Sets the lag gauges from the bus's rows."""
    for row in rows:
        EVENTS_PENDING.labels(row.group, row.stream).set(row.pending)
        EVENTS_LAG.labels(row.group, row.stream).set(row.lag)
        EVENTS_OLDEST_PENDING.labels(row.group, row.stream).set(row.oldest_pending_seconds)
