"""Benchmark of the dashboard (`djobs tui`) over a big database: a script that prints figures.

    .venv/bin/python benchmarks/tui_startup.py                      # SQLite in a temp dir
    .venv/bin/python benchmarks/tui_startup.py --database postgresql://postgres@127.0.0.1:5432/test
    .venv/bin/python benchmarks/tui_startup.py --jobs 1000000 --drain-seconds 20

1. Seeds `--jobs` jobs (default 200,000) and `--events` events (default 100,000) with bulk SQL (a schema
   made by `djobs.connect`, rows by executemany in one transaction).
2. First frame: runs the real `djobs --database URL tui` in a pseudo-terminal of `--size` cells and reads
   what it writes to the terminal: the first frame is the status line saying "connected" (jobs, workers,
   schedules and events painted), the counts are the status line saying "N jobs in M queues" (the queue
   summary painted). Then it types `q`. Repeated `--runs` times (median and best). In the same run, as
   baselines: `python -c pass`, `djobs --help` and `python -c "import textual.app"` (spawn to exit), and
   the raw SQL count the queue summary needs.
3. Refresh cost: starts a worker process draining a queue that a feeder process fills at `--rate` jobs/s,
   and a dashboard process (refresh 1 s) that runs `--drain-seconds` and reports its own CPU time per
   wall-clock second (all threads: polling and rendering) next to an idle baseline with nothing draining.

Goal: first frame at most 1 s, refresh under 10 % of one core. Wall-clock figures on a shared machine mean
little without the load average: it is printed before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

REPO = Path(__file__).resolve().parent.parent
STATUSES = [("completed", 0.9), ("failed", 0.03), ("cancelled", 0.02), ("pending", 0.05)]
QUEUES = ["default", "emails", "reports", "media"]
TYPES = ["send-email", "resize", "report", "cleanup", "sync"]
EVENT_KINDS = ["job_started", "job_completed", "job_failed", "job_retrying"]


# ---- seeding ----


def _sqlite_path(url: str) -> str:
    return url.split(":///", 1)[1]


def _connect_raw(url: str) -> tuple[object, str]:
    """A DB-API connection for bulk inserts and its paramstyle marker."""
    if url.startswith("sqlite"):
        import sqlite3

        return sqlite3.connect(_sqlite_path(url)), "?"
    import psycopg

    parts = urlsplit(url)
    schema = parse_qs(parts.query).get("schema", [None])[0]
    conn = psycopg.connect(parts._replace(query="").geturl().replace("postgresql+psycopg", "postgresql"))
    if schema:
        conn.execute(f'SET search_path TO "{schema}"')
    return conn, "%s"


def _required_columns(conn: object, url: str, table: str) -> list[str]:
    """NOT NULL columns without a default in the database (Peewee's defaults live in Python)."""
    if url.startswith("sqlite"):
        rows = conn.execute(f"PRAGMA table_info({table})").fetchall()  # type: ignore[attr-defined]
        return [r[1] for r in rows if r[3] and r[4] is None and not r[5]]
    rows = conn.execute(  # type: ignore[attr-defined]
        "SELECT column_name FROM information_schema.columns WHERE table_name = %s "
        "AND table_schema = current_schema() AND is_nullable = 'NO' AND column_default IS NULL",
        (table,),
    ).fetchall()
    return [r[0] for r in rows]


def seed(url: str, jobs: int, events: int) -> None:
    import djobs

    store = djobs.connect(url)  # creates the schema
    store.close()
    conn, p = _connect_raw(url)
    rng = random.Random(42)
    now = time.time()
    statuses = [s for s, _ in STATUSES]
    weights = [w for _, w in STATUSES]
    columns = [
        "id", "type", "queue", "args", "priority", "status", "attempt", "max_retries", "last_error",
        "result", "run_at", "started_at", "completed_at", "created_at", "updated_at",
    ]  # fmt: skip
    # Other NOT NULL columns without a database default (flags the schema may grow) get 0.
    extra = [c for c in _required_columns(conn, url, "djobs_jobs") if c not in columns]
    job_sql = f"INSERT INTO djobs_jobs ({', '.join(columns + extra)}) VALUES ({', '.join([p] * (len(columns) + len(extra)))})"
    event_sql = f"INSERT INTO djobs_events (ts, kind, job_id, queue, data) VALUES ({', '.join([p] * 5)})"
    ids: list[str] = []
    rows = []
    for i in range(jobs):
        created = now - 86400 + 86400 * i / max(jobs, 1)
        status = rng.choices(statuses, weights)[0]
        done = status in ("completed", "failed", "cancelled")
        job_id = str(uuid.UUID(int=rng.getrandbits(128)))
        ids.append(job_id)
        rows.append(
            (
                job_id,
                rng.choice(TYPES),
                rng.choice(QUEUES),
                json.dumps({"n": i}),
                rng.randint(0, 5),
                status,
                1 if done else 0,
                3,
                "RuntimeError: boom" if status == "failed" else None,
                json.dumps(i) if status == "completed" else None,
                created,
                created + 0.01 if done else None,
                created + 0.02 if done else None,
                created,
                created + 0.02,
                *([0] * len(extra)),
            )
        )
    cur = conn.cursor()  # type: ignore[attr-defined]
    t0 = time.perf_counter()
    for start in range(0, len(rows), 10_000):
        cur.executemany(job_sql, rows[start : start + 10_000])
    ev_rows = []
    for i in range(events):
        ev_rows.append(
            (
                now - 3600 + 3600 * i / max(events, 1),
                rng.choice(EVENT_KINDS),
                rng.choice(ids),
                rng.choice(QUEUES),
                "{}",
            )
        )
    for start in range(0, len(ev_rows), 10_000):
        cur.executemany(event_sql, ev_rows[start : start + 10_000])
    conn.commit()  # type: ignore[attr-defined]
    if url.startswith("sqlite"):
        conn.execute("ANALYZE")  # type: ignore[attr-defined]
    else:
        cur.execute("ANALYZE djobs_jobs")
        cur.execute("ANALYZE djobs_events")
        conn.commit()  # type: ignore[attr-defined]
    conn.close()  # type: ignore[attr-defined]
    print(f"seeded {jobs:,} jobs and {events:,} events in {time.perf_counter() - t0:.1f} s")


# ---- child processes ----

CPU_CHILD = """
import asyncio, json, sys, time
url, seconds = sys.argv[1], float(sys.argv[2])
import djobs
from djobs.tui import make_app

async def main():
    queue = djobs.Queue(djobs.connect(url))
    app = make_app(queue, refresh=1.0)
    async with app.run_test(size=(160, 50)) as pilot:
        while app.polls == 0:
            await pilot.pause(0.01)
        await pilot.pause(1.0)
        polls0, cpu0, wall0 = app.polls, time.process_time(), time.monotonic()
        await asyncio.sleep(seconds)
        cpu, wall, polls = time.process_time() - cpu0, time.monotonic() - wall0, app.polls - polls0
    print(json.dumps({"cpu_per_s": cpu / wall, "polls": polls, "wall": wall}))

asyncio.run(main())
"""

WORKER_CHILD = """
import sys, djobs
queue = djobs.Queue(djobs.connect(sys.argv[1]))
queue.register("noop", lambda args: None, queue="drain")
queue.worker(queues={"drain": int(sys.argv[2])}, poll_interval=0.05).run()
"""

FEEDER_CHILD = """
import sys, time, djobs
queue = djobs.Queue(djobs.connect(sys.argv[1]))
queue.register("noop", lambda args: None, queue="drain")
rate = float(sys.argv[2]); batch = max(1, int(rate / 10))
next_at = time.monotonic()
while True:
    queue.enqueue_many([djobs.Sub("noop", i) for i in range(batch)])
    next_at += batch / rate
    time.sleep(max(0.0, next_at - time.monotonic()))
"""


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO)}


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg()) + f" on {os.cpu_count()} CPUs"


def tui_in_terminal(url: str, size: tuple[int, int], cwd: str) -> dict[str, float]:
    """Seconds from spawning `djobs tui` to its first frame and to its counts, read off the terminal."""
    import fcntl
    import pty
    import select
    import struct
    import termios

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", size[1], size[0], 0, 0))
    env = {k: v for k, v in _env().items() if not k.startswith("DJOBS_")}
    env["TERM"] = "xterm-256color"
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "djobs", "--database", url, "tui"],
        stdin=slave, stdout=slave, stderr=slave, env=env, cwd=cwd, start_new_session=True,
    )  # fmt: skip
    os.close(slave)
    marks = {b"connected": "frame", b" jobs in ": "counts"}
    found: dict[str, float] = {}
    seen = b""
    try:
        while len(found) < len(marks):
            ready, _, _ = select.select([master], [], [], 30)
            if not ready:
                raise SystemExit(f"djobs tui showed no frame within 30 s; it wrote: {seen[-400:]!r}")
            try:
                chunk = os.read(master, 1 << 16)
            except OSError:  # the child exited
                raise SystemExit(f"djobs tui exited early; it wrote: {seen[-400:]!r}") from None
            seen = seen[-64:] + chunk  # a mark split across two reads is still found
            for mark, name in marks.items():
                if name not in found and mark in seen:
                    found[name] = time.perf_counter() - started
        os.write(master, b"q")
        deadline = time.monotonic() + 10
        while proc.poll() is None and time.monotonic() < deadline:  # read on: a full terminal blocks it
            if select.select([master], [], [], 0.1)[0]:
                try:
                    os.read(master, 1 << 16)
                except OSError:
                    break
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
    return found


def spawn_seconds(argv: list[str], cwd: str) -> float:
    started = time.perf_counter()
    subprocess.run(argv, env=_env(), cwd=cwd, stdout=subprocess.DEVNULL, check=True)
    return time.perf_counter() - started


def raw_count_seconds(url: str) -> float:
    """The queue summary's count on a fresh connection, the statement djobs sends (from the partial indexes, on
    PostgreSQL with sequential scans off as djobs asks) in raw SQL: the floor for the counts."""
    from djobs.storage.stats import _COUNTS

    conn, _ = _connect_raw(url)
    started = time.perf_counter()
    if not url.startswith("sqlite"):
        conn.execute("SET enable_seqscan = off")  # type: ignore[attr-defined]
    conn.execute(_COUNTS).fetchall()  # type: ignore[attr-defined]
    elapsed = time.perf_counter() - started
    conn.close()  # type: ignore[attr-defined]
    return elapsed


def first_frame(url: str, runs: int, size: tuple[int, int]) -> None:
    cwd = tempfile.mkdtemp(prefix="djobs-tui-cwd-")  # no djobs.toml to discover
    print(f"load average before: {_load()}")
    base = {
        "python -c pass": statistics.median(
            spawn_seconds([sys.executable, "-c", "pass"], cwd) for _ in range(5)
        ),
        "djobs --help": statistics.median(
            spawn_seconds([sys.executable, "-m", "djobs", "--help"], cwd) for _ in range(5)
        ),
        "import textual.app": statistics.median(
            spawn_seconds([sys.executable, "-c", "import textual.app"], cwd) for _ in range(5)
        ),
        "raw count query": statistics.median(raw_count_seconds(url) for _ in range(5)),
    }
    for name, seconds in base.items():
        print(f"baseline {name:<20} {seconds:.3f} s")
    results = [tui_in_terminal(url, size, cwd) for _ in range(runs)]
    for name in ("frame", "counts"):
        values = [r[name] for r in results]
        label = "first frame" if name == "frame" else "counts shown"
        print(
            f"djobs tui {label:<12} median {statistics.median(values):.3f} s, best {min(values):.3f} s "
            f"({', '.join(f'{v:.3f}' for v in values)}) at {size[0]}x{size[1]} (goal <= 1.0 s)"
        )
    frame = statistics.median(r["frame"] for r in results)
    floor = base["djobs --help"] + base["import textual.app"] - base["python -c pass"]
    print(f"first frame / (djobs --help + import textual.app): {frame / floor:.2f}x")
    print(f"load average after: {_load()}")


def refresh_cpu(url: str, seconds: float) -> dict[str, float]:
    res = subprocess.run(
        [sys.executable, "-c", CPU_CHILD, url, str(seconds)],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=seconds + 120,
    )
    if res.returncode:
        raise SystemExit(f"dashboard child failed:\n{res.stderr}")
    return json.loads(res.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def completed_in_drain(url: str) -> int:
    import djobs

    store = djobs.connect(url)
    try:
        stats = {s.name: s for s in djobs.Queue(store).queue_stats()}
        drain = stats.get("drain")
        return int(drain.counts.get("completed", 0)) if drain else 0
    finally:
        store.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--database", help="database URL (default: a new SQLite file in a temp dir)")
    ap.add_argument("--jobs", type=int, default=200_000)
    ap.add_argument("--events", type=int, default=100_000)
    ap.add_argument("--runs", type=int, default=5, help="first-frame measurements")
    ap.add_argument("--width", type=int, default=160, help="terminal columns")
    ap.add_argument("--height", type=int, default=50, help="terminal lines")
    ap.add_argument("--no-refresh", action="store_true", help="measure the first frame only")
    ap.add_argument("--rate", type=float, default=1000.0, help="jobs/s fed to the draining worker")
    ap.add_argument("--concurrency", type=int, default=16, help="the draining worker's concurrency")
    ap.add_argument("--drain-seconds", type=float, default=10.0)
    args = ap.parse_args()

    tmp = tempfile.TemporaryDirectory(prefix="djobs-tui-bench-")
    url = args.database or f"sqlite:///{Path(tmp.name) / 'bench.db'}"
    print(f"database: {url.split('@')[-1]}")
    seed(url, args.jobs, args.events)

    first_frame(url, args.runs, (args.width, args.height))
    if args.no_refresh:
        tmp.cleanup()
        return

    idle = refresh_cpu(url, min(args.drain_seconds, 5.0))
    print(
        f"refresh cost, idle database: {100 * idle['cpu_per_s']:.1f} % of one core ({int(idle['polls'])} polls)"
    )

    worker = subprocess.Popen([sys.executable, "-c", WORKER_CHILD, url, str(args.concurrency)], env=_env())
    feeder = subprocess.Popen([sys.executable, "-c", FEEDER_CHILD, url, str(args.rate)], env=_env())
    try:
        time.sleep(3.0)  # let both warm up
        done0, t0 = completed_in_drain(url), time.monotonic()
        busy = refresh_cpu(url, args.drain_seconds)
        done1, t1 = completed_in_drain(url), time.monotonic()
    finally:
        for proc in (feeder, worker):
            proc.terminate()
        for proc in (feeder, worker):
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
    rate = (done1 - done0) / (t1 - t0)
    print(
        f"refresh cost while a worker drains {rate:,.0f} jobs/s (fed {args.rate:,.0f}/s): "
        f"{100 * busy['cpu_per_s']:.1f} % of one core ({int(busy['polls'])} polls in {busy['wall']:.0f} s; goal < 10 %)"
    )
    tmp.cleanup()


if __name__ == "__main__":
    main()
