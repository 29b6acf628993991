"""The Redis Streams engine of the event bus (``redis://HOST:PORT/DB``), with the
semantics of shared/events/bus.py, like the embedded log.

- A stream per producing service; an entry carries the encoded envelope in ``event``
  (plus ``type`` and ``subject`` for humans reading the stream).
- Consumer groups are created on first read at id 0 (MKSTREAM), so a group that starts
  late still sees the history that was kept.
- A read first takes over entries idle longer than the visibility timeout (XAUTOCLAIM;
  their delivery count is read back with XPENDING), then reads new ones (XREADGROUP
  ``>``, blocking in short slices so entries that become reclaimable are not left
  waiting behind a long block).
- ``retry_later`` keeps the entry pending and sets its idle time so that it becomes
  reclaimable after the delay (XCLAIM ... IDLE, delivery count unchanged).
- Dead letters go to the stream ``<stream>:dead``; the move (XACK + XADD) is one atomic
  script, and happens only while the entry is still pending (a consumer that lost the
  entry to another one cannot dead-letter it twice).
- Streams in use are recorded in the set ``tally:bus:streams`` (for ``read_all`` over
  every stream, ``dead_letters`` and ``lag``).
- With ``max_len``, streams are trimmed (``trim``, also every ``trim_every`` appends of
  this publisher) to the newest ``max_len`` entries, but never past an entry that a group
  has pending or has not been delivered yet; a dead-letter stream keeps its newest
  ``max_len`` entries (``XADD MAXLEN`` in the move).
- Consumer names are per process (host and pid), so every restart leaves a name behind
  in the group: the same maintenance removes consumers idle for twice the visibility
  timeout that have nothing pending (checked and removed in one script: a consumer that
  took an entry in between keeps it).
"""

from shared.events.redis_streams.engine import DEAD_SUFFIX, STREAMS_KEY, RedisStreamsBus

__all__ = ["DEAD_SUFFIX", "STREAMS_KEY", "RedisStreamsBus"]
