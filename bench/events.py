"""Events through the outbox of one process to the inbox of another, on each bus engine.

    .venv/bin/python -m bench.events [--events 10000] [--rate 1000] [--engines sqlite,redis]
                                     [--json results.json]

For each engine (the embedded SQLite log, and Redis Streams on a throwaway
redis-server) it starts two processes:

- a producer: one transaction per event on its own SQLite database (a real
  ``shared.db.Database``) that inserts a state row and writes the event into the outbox
  (``tx.emit``), at the target rate; the real ``OutboxRelay`` publishes to the bus;
- a consumer: the real ``shared.events.inbox.EventConsumer`` (inbox, per-subject
  sequence check: the events are ORDERED, 8 subjects like the WMS's warehouses) on its
  own SQLite database, whose handler records when it applied each event.

Relay and consumer run with the services' default settings (committed events handed
to the relay, which coalesces for 5 ms; a pass over the outbox table every 0.2 s;
consumer block 200 ms). Prints, per engine: the publish rate reached, end-to-end
throughput, and the lag from the event's time (set when the producer creates it, inside
its transaction) to applied (inside the consumer's transaction, just before its
commit): p50, p99, max; the same split at the bus (event time -> appended to the bus,
appended -> applied) to show where the time goes; the CPU time per event of each
process (hardly moved by the machine's other load, unlike the lag); and the consumer's
outcomes.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import closing
from pathlib import Path
from typing import Any

import msgspec
import uvloop

STREAM = "bench.events"
EVENT_TYPE = "bench.happened"
GROUP = "bench-consumer"
SUBJECTS = 8


class Happened(msgspec.Struct, frozen=True):
    n: int


def _default(setting: str) -> Any:
    """A service's default setting (what `tally up` runs with)."""
    from shared.settings import Settings

    return next(f.default for f in msgspec.structs.fields(Settings) if f.name == setting)


def _cpu_seconds() -> float:
    """CPU time of this process (every thread, user and system): what the machine's
    other load does not change much, unlike the lag."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


# -- the producer process ------------------------------------------------------------


async def produce(db_url: str, bus_url: str, events: int, rate: float) -> None:
    from sqlalchemy import Column, Integer, MetaData, String, Table, insert, select

    from shared.db import Database
    from shared.events.bus import open_bus
    from shared.events.envelope import new_event
    from shared.events.outbox import OutboxRelay, outbox_table

    metadata = MetaData()
    things = Table(
        "things",
        metadata,
        Column("n", Integer, primary_key=True),
        Column("subject", String(64), nullable=False),
        Column("version", Integer, nullable=False),
    )
    outbox_table(metadata)
    db = Database(db_url, metadata)
    await db.create_schema()
    bus = open_bus(bus_url)
    relay = OutboxRelay(
        db,
        bus,
        poll_seconds=float(_default("outbox_poll_seconds")),
        coalesce_seconds=float(_default("outbox_coalesce_seconds")),
    )
    add_thing = insert(things)
    stop = asyncio.Event()
    relay_task = asyncio.create_task(relay.run(stop))
    print("ready", flush=True)
    sys.stdin.readline()  # the go signal
    cpu_at_go = _cpu_seconds()

    started = time.perf_counter()
    for n in range(events):
        due = started + n / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        # The state change and its event in one transaction; SUBJECTS aggregates, each
        # event the next version of its subject (this process is the only writer).
        subject, version = f"thing-{n % SUBJECTS}", n // SUBJECTS + 1
        async with db.transaction() as tx:
            # A prebuilt statement and its parameters: SQLAlchemy caches the compiled
            # form (``.values(...)`` would rebuild and re-key the statement each time).
            await tx.conn.execute(add_thing, {"n": n, "subject": subject, "version": version})
            tx.emit(
                STREAM,
                new_event(
                    source="bench.producer",
                    type_=EVENT_TYPE,
                    subject=subject,
                    sequence=version,
                    payload=Happened(n),
                ),
            )
    produced = time.perf_counter() - started
    # Until the relay has published everything.
    table = outbox_table(metadata)
    while True:
        async with db.read() as conn:
            left = await conn.scalar(
                select(table.c.position).where(table.c.published_at.is_(None)).limit(1)
            )
        if left is None:
            break
        await asyncio.sleep(0.01)
    stop.set()
    await relay_task
    await bus.close()
    await db.dispose()
    cpu = _cpu_seconds() - cpu_at_go
    print(json.dumps({"produce_seconds": produced, "cpu_seconds": cpu}), flush=True)


# -- the consumer process ------------------------------------------------------------


async def consume(db_url: str, bus_url: str, events: int) -> None:
    from sqlalchemy import Column, Float, MetaData, String, Table, insert, select

    from shared.db import Database, Tx
    from shared.events.bus import open_bus
    from shared.events.envelope import Event
    from shared.events.inbox import EVENTS_HANDLED, ApplyOnly, EventConsumer, inbox_tables

    metadata = MetaData()
    applied = Table(
        "applied",
        metadata,
        Column("event_id", String(64), primary_key=True),
        Column("event_time", Float, nullable=False),
        Column("applied_at", Float, nullable=False),
    )
    inbox_tables(metadata)
    db = Database(db_url, metadata)
    await db.create_schema()
    bus = open_bus(bus_url)
    done = asyncio.Event()
    seen = 0
    record = insert(applied)

    async def on_event(tx: Tx, event: Event) -> None:
        nonlocal seen
        await tx.conn.execute(
            record,
            {"event_id": event.id, "event_time": event.time.timestamp(), "applied_at": time.time()},
        )
        seen += 1
        if seen >= events:
            # Set after this transaction commits (the consumer loop runs on).
            asyncio.get_running_loop().call_soon(done.set)

    consumer = EventConsumer(
        db=db,
        bus=bus,
        group=GROUP,
        streams=[STREAM],
        handlers={EVENT_TYPE: ApplyOnly(on_event)},
        ordered_types={EVENT_TYPE},
        block_ms=int(_default("consumer_block_ms")),
    )
    stop = asyncio.Event()
    task = asyncio.create_task(consumer.run(stop))
    await bus.read_all(STREAM, limit=1)  # the bus answers
    print("ready", flush=True)
    cpu_at_ready = _cpu_seconds()
    await done.wait()
    cpu = _cpu_seconds() - cpu_at_ready
    await asyncio.sleep(0.2)  # let the last batch's acks go out
    stop.set()
    await asyncio.wait_for(task, timeout=30)
    async with db.read() as conn:
        rows = (await conn.execute(select(applied))).all()
    await bus.close()
    await db.dispose()
    outcomes = {
        sample.labels["outcome"]: int(sample.value)
        for metric in EVENTS_HANDLED.collect()
        for sample in metric.samples
        if sample.name.endswith("_total") and sample.labels["group"] == GROUP
    }
    print(
        json.dumps(
            {"applied": [list(row) for row in rows], "outcomes": outcomes, "cpu_seconds": cpu}
        ),
        flush=True,
    )


# -- the orchestrator ----------------------------------------------------------------


def _child(role: str, db_url: str, bus_url: str, events: int, rate: float) -> Any:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TALLY_")}
    return subprocess.Popen(  # our own interpreter and module
        [
            sys.executable,
            "-m",
            "bench.events",
            "--role",
            role,
            "--db",
            db_url,
            "--bus",
            bus_url,
            "--events",
            str(events),
            "--rate",
            str(rate),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )


def _expect_ready(process: Any, role: str) -> None:
    line = process.stdout.readline().strip()
    if line != "ready":
        raise RuntimeError(f"the {role} did not start (said {line!r})")


def _appended_times(bus_url: str) -> dict[str, float]:
    """When each event was appended to the bus: the embedded log's ``appended_at``; the
    millisecond time of a Redis stream entry id."""
    if bus_url.startswith("sqlite:///"):
        with closing(sqlite3.connect(bus_url.removeprefix("sqlite:///"))) as conn:
            rows = conn.execute(
                "SELECT event_id, MIN(appended_at) FROM entries GROUP BY event_id"
            ).fetchall()
        return {event_id: float(at) for event_id, at in rows}
    import redis

    client = redis.Redis.from_url(bus_url)
    try:
        out: dict[str, float] = {}
        entries: list[tuple[bytes, dict[bytes, bytes]]] = client.xrange(STREAM)  # type: ignore[assignment]
        for entry_id, fields in entries:
            event = json.loads(fields[b"event"])
            out.setdefault(event["id"], int(entry_id.split(b"-")[0]) / 1000)
        return out
    finally:
        client.close()


def run_engine(
    engine: str,
    bus_url: str,
    db_urls: tuple[str, str],
    events: int,
    rate: float,
) -> dict[str, Any]:
    """One producer and one consumer process on ``bus_url``; their figures."""
    consumer = _child("consumer", db_urls[1], bus_url, events, rate)
    producer = _child("producer", db_urls[0], bus_url, events, rate)
    try:
        _expect_ready(consumer, "consumer")
        _expect_ready(producer, "producer")
        producer.stdin.write("go\n")
        producer.stdin.flush()
        produced = json.loads(producer.stdout.readline())
        consumed = json.loads(consumer.stdout.readline())
        rows = consumed["applied"]
        producer.wait(timeout=60)
        consumer.wait(timeout=60)
    finally:
        for process in (producer, consumer):
            if process.poll() is None:
                process.kill()
                process.wait()
    appended = _appended_times(bus_url)
    if len(rows) != events:
        raise RuntimeError(f"{engine}: {len(rows)} of {events} events applied")
    lag = [applied_at - event_time for _, event_time, applied_at in rows]
    to_bus = [appended[eid] - event_time for eid, event_time, _ in rows if eid in appended]
    on_bus = [applied_at - appended[eid] for eid, _, applied_at in rows if eid in appended]
    first = min(event_time for _, event_time, _ in rows)
    last = max(applied_at for _, _, applied_at in rows)

    def ms(value: float) -> float:
        return round(value * 1000, 1)

    return {
        "engine": engine,
        "events": events,
        "target_rate_per_s": rate,
        "publish_rate_per_s": round(events / produced["produce_seconds"], 1),
        "throughput_per_s": round(events / (last - first), 1),
        "lag_p50_ms": ms(statistics.median(lag)),
        "lag_p99_ms": ms(_percentile(lag, 0.99)),
        "lag_max_ms": ms(max(lag)),
        "to_bus_p50_ms": ms(statistics.median(to_bus)),
        "to_bus_p99_ms": ms(_percentile(to_bus, 0.99)),
        "bus_to_applied_p50_ms": ms(statistics.median(on_bus)),
        "bus_to_applied_p99_ms": ms(_percentile(on_bus, 0.99)),
        "producer_cpu_ms_per_event": round(produced["cpu_seconds"] * 1000 / events, 3),
        "consumer_cpu_ms_per_event": round(consumed["cpu_seconds"] * 1000 / events, 3),
        "consumer_outcomes": consumed["outcomes"],
    }


def run(events: int, rate: float, engines: list[str], databases: str) -> list[dict[str, Any]]:
    from tests.support.servers import create_database, postgres_server, redis_server

    results = []
    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-events-")))
        cluster = stack.enter_context(postgres_server()) if databases == "postgres" else None
        for engine in engines:
            if cluster:
                db_urls = (
                    create_database(cluster, f"bench_{engine}_producer"),
                    create_database(cluster, f"bench_{engine}_consumer"),
                )
            else:
                db_urls = (
                    f"sqlite+aiosqlite:///{tmp / f'{engine}-producer.db'}",
                    f"sqlite+aiosqlite:///{tmp / f'{engine}-consumer.db'}",
                )
            if engine == "sqlite":
                bus_url = f"sqlite:///{tmp / 'events.db'}"
                results.append(run_engine(engine, bus_url, db_urls, events, rate))
            elif engine == "redis":
                if not shutil.which("redis-server"):
                    print("redis: skipped (no redis-server on PATH)")
                    continue
                with redis_server() as bus_url:
                    results.append(run_engine(engine, bus_url, db_urls, events, rate))
            else:
                raise SystemExit(f"unknown engine {engine!r} (sqlite, redis)")
            results[-1]["service_databases"] = databases
    return results


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--rate", type=float, default=1_000.0, help="target events per second")
    parser.add_argument("--engines", default="sqlite,redis", help="bus engines, in this order")
    parser.add_argument(
        "--databases",
        choices=["sqlite", "postgres"],
        default="sqlite",
        help="the two services' own databases (postgres: a throwaway cluster)",
    )
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    parser.add_argument("--role", choices=["producer", "consumer"], help=argparse.SUPPRESS)
    parser.add_argument("--db", help=argparse.SUPPRESS)
    parser.add_argument("--bus", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role == "producer":
        uvloop.run(produce(args.db, args.bus, args.events, args.rate))
        return
    if args.role == "consumer":
        uvloop.run(consume(args.db, args.bus, args.events))
        return
    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    results = run(args.events, args.rate, engines, args.databases)
    for figures in results:
        print(f"-- {figures['engine']}")
        for name, value in figures.items():
            if name != "engine":
                print(f"{name:26} {value}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
