"""Benchmark of the dashboard (`djobs tui`) over a big database: a script that prints figures.

    .venv/bin/python benchmarks/tui_startup.py                      # SQLite in a temp dir
    .venv/bin/python benchmarks/tui_startup.py --database postgresql://postgres@127.0.0.1:5432/test
    .venv/bin/python benchmarks/tui_startup.py --jobs 1000000 --drain-seconds 20

1. Seeds `--jobs` jobs (default 200,000) and `--events` events (default 100,000) with bulk SQL (a schema
   made by `djobs.connect`, rows by executemany in one transaction).
2. First frame: starts a fresh Python process that imports `djobs.tui`, opens the queue, runs the app
   headless and stops at the first full frame of the main screen (first poll applied and painted); prints
   the time from process spawn and from app start. Repeated `--runs` times.
3. Refresh cost: starts a worker process draining a queue that a feeder process fills at `--rate` jobs/s,
   and a dashboard process (refresh 1 s) that runs `--drain-seconds` and reports its own CPU time per
   wall-clock second (all threads: polling and rendering) next to an idle baseline with nothing draining.

Goal: first frame under 1 s, refresh under 10 % of one core.
"""

from __future__ import annotations

import argparse
import json
import os
import random
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

FIRST_FRAME_CHILD = """
import asyncio, json, sys, time
t_spawn = float(sys.argv[1]); url = sys.argv[2]
import djobs
from djobs.tui import make_app
t_import = time.time()

async def main():
    queue = djobs.Queue(djobs.connect(url))
    t_app = time.time()
    app = make_app(queue, refresh=1.0)
    async with app.run_test(size=(160, 50)) as pilot:
        while app.polls == 0:
            await pilot.pause(0.002)
        await pilot.pause()  # the frame with the data painted
        t_frame = time.time()
        cpu = time.process_time()
        rows = app.query_one("#jobs").row_count
    print(json.dumps({"spawn_to_frame": t_frame - t_spawn, "app_to_frame": t_frame - t_app,
                      "imports": t_import - t_spawn, "rows": rows, "cpu": cpu}))

asyncio.run(main())
"""

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


def first_frame(url: str, runs: int) -> list[dict[str, float]]:
    out = []
    for _ in range(runs):
        t_spawn = time.time()
        res = subprocess.run(
            [sys.executable, "-c", FIRST_FRAME_CHILD, repr(t_spawn), url],
            env=_env(),
            capture_output=True,
            text=True,
            timeout=120,
        )
        if res.returncode:
            raise SystemExit(f"first-frame child failed:\n{res.stderr}")
        out.append(json.loads(res.stdout.strip().splitlines()[-1]))
    return out


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
    ap.add_argument("--runs", type=int, default=3, help="first-frame measurements")
    ap.add_argument("--rate", type=float, default=1000.0, help="jobs/s fed to the draining worker")
    ap.add_argument("--concurrency", type=int, default=16, help="the draining worker's concurrency")
    ap.add_argument("--drain-seconds", type=float, default=10.0)
    args = ap.parse_args()

    tmp = tempfile.TemporaryDirectory(prefix="djobs-tui-bench-")
    url = args.database or f"sqlite:///{Path(tmp.name) / 'bench.db'}"
    print(f"database: {url.split('@')[-1]}")
    seed(url, args.jobs, args.events)

    frames = first_frame(url, args.runs)
    for f in frames:
        print(
            f"first full frame: {f['spawn_to_frame']:.3f} s from process spawn "
            f"({f['imports']:.3f} s interpreter + imports, {f['app_to_frame']:.3f} s from app start), "
            f"{int(f['rows'])} rows in the jobs table; {f['cpu']:.3f} s CPU in the process"
        )
    best = min(f["spawn_to_frame"] for f in frames)
    print(f"first full frame, best of {len(frames)}: {best:.3f} s (goal < 1 s)")
    if hasattr(os, "getloadavg"):  # wall-clock figures on a shared machine mean little without this
        print("load average: " + " ".join(f"{x:.1f}" for x in os.getloadavg()) + f" on {os.cpu_count()} CPUs")

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
