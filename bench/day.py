"""A distributor's day end to end (issue 19): `tally simulate` for ``--lines`` order
lines (250,000 by default) on the whole platform as `tally up` starts it, on the
embedded default and on PostgreSQL + Redis, in the same run.

    .venv/bin/python -m bench.day [--lines 250000] [--databases sqlite,postgres]
                                  [--seed 1] [--quick] [--profile order_to_ship,...]
                                  [--profile-seconds 20] [--profile-at 0.1,0.9]
                                  [--json FILE]

Per database it launches the platform on a temporary data dir (``tally.launcher.launch``;
on PostgreSQL the five business services get their own database on a throwaway
server, and the event bus and the gateway's rate limits a throwaway Redis), then runs
the simulator in this process (``tally.simulate.run.simulate``: the day's parties
through the gateway, the platform left to settle, the accuracy report read back from
the platform). Printed per database:
- lines placed, wall time of the day (from the first order to the settled platform),
  lines per second (and against the target: 250,000 in 10 minutes, ~417 lines/s);
- CPU ms per line per service (user + system from /proc, of each service's process)
  and of the simulator itself, and each service's peak resident memory (VmHWM; the
  target: none over 300 MB);
- the accuracy report's must-be-zero figures and the latency per flow;
- the platform's CPU ms per line in each fifth of the day (by lines placed): whether a
  line costs more as the databases and the event log grow;
- ``--profile``: py-spy records the named services for ``--profile-seconds`` at each
  point of ``--profile-at`` (fractions of the lines placed, 1 for the settle; a third
  of the way in by default); their busiest frames are printed (where the time goes), and py-spy's raw
  stacks are kept in ``$TALLY_PROFILE_DIR`` when it is set (``<service>-<point>.raw``).

The simulator runs on the same 2 cores as the platform; its own CPU per line is printed
so its share is visible. ``--quick``: 5,000 lines on SQLite only.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import uvloop

from bench.orders import event_counts, http_counts

ROOT = Path(__file__).resolve().parent.parent
BUSINESS = ("erp", "wms", "availability", "order_to_ship", "billing")
TARGET_LINES_PER_SECOND = 250_000 / 600
TARGET_PEAK_MB = 300
# py-spy names files by module path: these are the platform's own.
OUR_PACKAGES = {"experience_apis", "process_apis", "system_apis", "shared", "gateway", "tally"}
ENTRY_FILES = {"tally/cli.py", "tally/__main__.py"}


def _cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _peak_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except FileNotFoundError:
        pass
    return 0.0


@contextmanager
def _platform(
    database: str, stack: ExitStack, keep: Path | None
) -> Iterator[tuple[Any, Path, dict[str, str]]]:
    from tally.launcher import launch
    from tests.support.ports import free_ports

    env: dict[str, str] = {}
    if database == "postgres":
        from tests.support.servers import create_database, postgres_server, redis_server

        cluster = stack.enter_context(postgres_server())
        redis_url = stack.enter_context(redis_server())
        env = {"TALLY_BUS_URL": redis_url, "TALLY_REDIS_URL": redis_url}
        for service in BUSINESS:
            url = create_database(cluster, f"bench_day_{service}_{os.getpid()}")
            env[f"TALLY_{service.upper()}_DATABASE_URL"] = url
    with ExitStack() as removal:
        if keep is None:
            data_dir = Path(removal.enter_context(tempfile.TemporaryDirectory(prefix="bench-day-")))
        else:  # left for reading afterwards (its SQLite databases, the services' logs)
            data_dir = keep / database
            data_dir.mkdir(parents=True, exist_ok=False)
        launched = launch(data_dir, ports=free_ports(), extra_env=env, seed_demo=False)
        try:
            yield launched, data_dir, env
        finally:
            launched.platform.stop()


def _py_spy() -> str | None:
    return shutil.which("py-spy") or (
        str(ROOT / ".venv/bin/py-spy") if (ROOT / ".venv/bin/py-spy").exists() else None
    )


def _profile(
    pids: dict[str, int], names: list[str], seconds: float, out: Path, point: float
) -> dict[str, Any]:
    """py-spy on each named service at once; their top frames by own samples."""
    binary = _py_spy()
    if binary is None:
        return {"error": "py-spy not found"}
    runs = {
        name: subprocess.Popen(
            [
                binary,
                "record",
                "-p",
                str(pids[name]),
                "-d",
                str(int(seconds)),
                "-r",
                "50",
                "-f",
                "raw",
                "-o",
                str(out / f"{name}-{point}.raw"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for name in names
        if name in pids
    }
    found: dict[str, Any] = {}
    for name, run in runs.items():
        run.wait()
        found[f"{name} at {point:.0%}"] = _top_frames(out / f"{name}-{point}.raw")
    return found


def _top_frames(raw: Path, top: int = 10) -> dict[str, list[tuple[str, float]]]:
    """Where a service's busy samples go: our own functions by inclusive share (the
    process's entry frames left out), and the libraries' functions by own share. The
    event loop's idle wait and the database driver threads' waits are not counted."""
    if not raw.exists():
        return {}
    ours: Counter[str] = Counter()
    libraries: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        if "Thread._bootstrap" in stack or frames[-1].startswith(("Runner.run", "EpollSelector")):
            continue
        n = int(count)
        total += n
        seen = set()
        for frame in frames:
            name, _, where = frame.partition(" (")
            path = where.split(":", 1)[0]
            if path.split("/", 1)[0] not in OUR_PACKAGES or path in ENTRY_FILES:
                continue
            label = f"{name} ({'/'.join(path.rsplit('/', 2)[-2:])})"
            if label not in seen:
                seen.add(label)
                ours[label] += n
        name, _, where = frames[-1].partition(" (")
        path = where.split(":", 1)[0]
        libraries[f"{name} ({'/'.join(path.rsplit('/', 2)[-2:])})"] += n
    if not total:
        return {}

    def share(counter: Counter[str]) -> list[tuple[str, float]]:
        return [(f, round(100 * n / total, 1)) for f, n in counter.most_common(top)]

    return {"ours (inclusive)": share(ours), "leaf frames (own)": share(libraries)}


def _profile_later(
    pids: dict[str, int],
    names: list[str],
    seconds: float,
    out: Path,
    points: tuple[float, ...],
    lines: int,
    placed: list[int],
    profiled: dict[str, Any],
    settling: Callable[[], bool],
) -> None:
    def later() -> None:
        out.mkdir(parents=True, exist_ok=True)
        for point in sorted(points):
            # 1: the settle (the lines placed never reach the whole day's: some are
            # refused or abandoned).
            while not (settling() if point >= 1 else placed[0] >= lines * point):
                time.sleep(0.5)
            profiled.update(_profile(pids, names, seconds, out, point))

    threading.Thread(target=later, daemon=True).start()


class _Fifths:
    """The platform's CPU seconds when each fifth of the lines has been placed."""

    def __init__(self, pids: dict[str, int], lines: int, placed: list[int], cpu: float) -> None:
        self.marks: list[tuple[int, float]] = [(0, cpu)]
        self.placing = threading.Event()  # set when the placing is over
        self._pids, self._lines, self._placed = pids, lines, placed
        threading.Thread(target=self._watch, daemon=True).start()

    def _watch(self) -> None:
        for fifth in range(1, 5):
            while self._placed[0] < self._lines * fifth / 5:
                if self.placing.wait(0.5):
                    return
            cpu = sum(_cpu_seconds(pid) for pid in self._pids.values())
            self.marks.append((self._placed[0], cpu))


def run_day(
    database: str,
    lines: int,
    seed: int,
    profile: list[str],
    seconds: float,
    keep: Path | None = None,
    profile_at: tuple[float, ...] = (1 / 3,),
) -> dict[str, Any]:
    from tally.simulate.run import Options, Progress, simulate
    from tally.supervisor import pid_file

    with ExitStack() as stack, _platform(database, stack, keep) as (launched, data_dir, env):
        os.environ.update(env)  # the report reads the bus and the ledger as the platform does
        pids = {
            name: int(pid_file(data_dir, name).read_text()) for name in launched.platform.processes
        }
        placed = [0]
        said: list[str] = [""]

        def phase(text: str) -> None:
            if text != said[0]:
                said[0] = text
                print(f"  [{database} {time.strftime('%X')}] {text}", file=sys.stderr, flush=True)

        progress = Progress(placed=lambda n: placed.__setitem__(0, placed[0] + n), phase=phase)
        profiled: dict[str, Any] = {}
        if profile:
            out = Path(os.environ.get("TALLY_PROFILE_DIR") or data_dir)
            _profile_later(
                pids,
                profile,
                seconds,
                out,
                profile_at,
                lines,
                placed,
                profiled,
                lambda: said[0].startswith("settling"),
            )
        before = {name: _cpu_seconds(pid) for name, pid in pids.items()}
        fifths = _Fifths(pids, lines, placed, sum(before.values()))
        calls_before = http_counts(launched)
        events_before = event_counts(launched)
        own_before = resource.getrusage(resource.RUSAGE_SELF)
        report = uvloop.run(  # as `tally simulate` runs it
            simulate(
                Options(
                    gateway=launched.platform.url("gateway"),
                    data_dir=data_dir,
                    lines=lines,
                    seed=seed,
                    settle_seconds=900,
                ),
                progress,
            )
        )
        fifths.placing.set()
        own = resource.getrusage(resource.RUSAGE_SELF)
        cpu = {name: _cpu_seconds(pid) - before[name] for name, pid in pids.items()}
        fifths.marks.append((report["lines"]["count"], sum(cpu.values()) + fifths.marks[0][1]))
        cpu["simulator"] = (own.ru_utime - own_before.ru_utime) + (
            own.ru_stime - own_before.ru_stime
        )
        peak = {name: round(_peak_mb(pid), 1) for name, pid in pids.items()}
        calls = http_counts(launched) - calls_before
        events = event_counts(launched) - events_before
        for name in env:
            os.environ.pop(name, None)
    placed_lines = report["lines"]["count"] or 1
    return {
        "database": database,
        "lines": report["lines"]["count"],
        "wall_seconds": report["wall_seconds"],
        "lines_per_second": report["lines_per_second"],
        "cpu_ms_per_line": {k: round(1000 * v / placed_lines, 2) for k, v in cpu.items()},
        "cpu_ms_per_line_platform": round(
            1000 * sum(v for k, v in cpu.items() if k != "simulator") / placed_lines, 2
        ),
        # The last fifth includes the settle (the work left once the lines are placed).
        "cpu_ms_per_line_by_fifth": [
            round(1000 * (c1 - c0) / max(1, n1 - n0), 2)
            for (n0, c0), (n1, c1) in itertools.pairwise(fifths.marks)
        ],
        "peak_mb": peak,
        "calls_per_line": {
            " ".join(key): round(n / placed_lines, 3)
            for key, n in calls.most_common()
            if n / placed_lines >= 0.01
        },
        "events_per_line": {
            " ".join(key): round(n / placed_lines, 3)
            for key, n in events.most_common()
            if n / placed_lines >= 0.005
        },
        "report": report,
        "profile": profiled,
    }


NOT_APPLIED = (" parked", " retried", " dead_lettered")


def _print(row: dict[str, Any]) -> None:
    from tally.simulate.report import MUST_BE_ZERO

    report = row["report"]
    print(
        f"\n== {row['database']}: {row['lines']} lines in {row['wall_seconds']} s = "
        f"{row['lines_per_second']} lines/s (target {TARGET_LINES_PER_SECOND:.0f}: "
        f"{'met' if (row['lines_per_second'] or 0) >= TARGET_LINES_PER_SECOND else 'NOT met'})"
    )
    print(
        "  CPU ms per line: "
        + ", ".join(f"{k} {v}" for k, v in row["cpu_ms_per_line"].items())
        + f"; platform total {row['cpu_ms_per_line_platform']}"
    )
    print(
        "  platform CPU ms per line by fifth of the day (the last with the settle): "
        + ", ".join(str(v) for v in row["cpu_ms_per_line_by_fifth"])
    )
    over = [k for k, v in row["peak_mb"].items() if v > TARGET_PEAK_MB]
    print(
        "  peak MB: "
        + ", ".join(f"{k} {v}" for k, v in row["peak_mb"].items())
        + f" (over {TARGET_PEAK_MB}: {over or 'none'})"
    )
    print(
        "  must be zero: "
        + ", ".join(f"{k} {report.get(k)}" for k in MUST_BE_ZERO)
        + f" -> {'all zero' if report['all_zero'] else 'NOT ALL ZERO'}"
    )
    print(
        "  HTTP calls per line (service method route): "
        + ", ".join(f"{k} {v}" for k, v in list(row["calls_per_line"].items())[:16])
    )
    # A park ("not yet") or a retry is a delivery done again.
    again = {k: v for k, v in row["events_per_line"].items() if k.endswith(NOT_APPLIED)}
    print(
        "  deliveries not applied per line (group type outcome): "
        + (", ".join(f"{k} {v}" for k, v in again.items()) or "none")
    )
    for flow, figures in report["latency_seconds"].items():
        print(f"  {flow}: {figures}")
    print(f"  orders by status: {report['orders']['by_status']}")
    print(
        f"  simulator: {report['simulator']['outcomes']}, retries {report['simulator']['retries']}"
    )
    for service, parts in (row["profile"] or {}).items():
        for part, frames in parts.items() if isinstance(parts, dict) else []:
            print(f"  profile {service}, {part}:")
            for frame, share in frames:
                print(f"    {share:5.1f}%  {frame}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lines", type=int, default=250_000)
    parser.add_argument("--databases", default="sqlite,postgres")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="5,000 lines, SQLite only")
    parser.add_argument("--profile", default="", help="services to profile, comma separated")
    parser.add_argument("--profile-seconds", type=float, default=20.0)
    parser.add_argument(
        "--profile-at",
        default="0.33",
        help="when to profile: fractions of the lines, comma separated",
    )
    parser.add_argument("--json", type=Path, help="write the figures here")
    parser.add_argument(
        "--keep", type=Path, help="run in DIR/<database> and leave the data there (a new DIR)"
    )
    args = parser.parse_args()
    # A bench stopped with SIGTERM still stops the platform it started (no orphans).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if args.quick:
        args.lines, args.databases = 5000, "sqlite"
    sys.path.insert(0, str(ROOT))
    rows = []
    for database in [d for d in args.databases.split(",") if d]:
        row = run_day(
            database,
            args.lines,
            args.seed,
            [p for p in args.profile.split(",") if p],
            args.profile_seconds,
            args.keep,
            tuple(float(p) for p in args.profile_at.split(",") if p),
        )
        _print(row)
        rows.append(row)
    if args.json:
        args.json.write_text(
            json.dumps(
                {"lines": args.lines, "seed": args.seed, "rows": rows}, indent=2, default=str
            )
        )


if __name__ == "__main__":
    main()
