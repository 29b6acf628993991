"""The embedded event log: an append-only SQLite table shared by every process on the
machine, with consumer groups, acknowledgements, redelivery of unacked entries, dead
letters and replay (the semantics of shared/events/bus.py, like the Redis engine).

All processes open the same file (WAL mode). Every write runs under SQLite's write lock
(BEGIN IMMEDIATE), so two consumers of one group, in one process or in several, never
take the same entry. An idle consumer only reads (no write lock): the head of its
streams and the earliest delivery time of its group's pending entries; then it waits
on the process's one watch (``watch.py``, decision 0064), which looks every
``poll_interval`` whether the file changed and wakes the consumers whose streams grew.

Entry ids are the global autoincrement ids (as strings in the interface). An event may
be stored twice (a relay retry, a replayed dead letter); consumers dedup by event id.

With ``max_len``, a publisher trims its stream every ``trim_every`` appends to the newest
``max_len`` entries, but never past the first entry a group has pending or has not been
delivered yet; each stream keeps at most ``max_len`` dead letters (the oldest go).
"""

from shared.events.sqlite_log.log import SqliteEventLog

__all__ = ["SqliteEventLog"]
