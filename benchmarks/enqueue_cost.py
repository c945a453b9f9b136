"""Where a batch enqueue's time goes on SQLite, part by part, beside the raw batch insert of the same run.

    .venv/bin/python benchmarks/enqueue_cost.py                 # 10,000 no-op jobs in batches of 100
    .venv/bin/python benchmarks/enqueue_cost.py --jobs 50000 --repeat 7

Each line is µs per job, the median of `--repeat` runs on fresh temp files:

- raw: `djobs.proof.raw`'s batch insert (`executemany` of 100 rows of its own table, one transaction);
- `enqueue_many`: the whole call, as `run.py` times it (the caller's `Sub`s made in the loop);
- the parts, each timed alone around the same kind of batch: the caller's `Sub`s, `Queue.new_jobs`
  (options, args to JSON, ids), `validate.new_jobs` (storage's own check) and `storage.insert_jobs` (the
  check, the statement through Peewee, the commit);
- the insert statement alone through `sqlite3` (the text djobs sends, fresh ids each batch; with its commit
  and WAL checkpoints), so what Peewee and the storage layer add is the difference;
- the floor: the same rows (djobs's columns and values) by `executemany` of a plain INSERT into a copy of the
  jobs table with no index, then with the b-trees djobs keeps for a pending job added one at a time (the id
  key, the claim index); the `(queue, status)` index over every job that counts once read is measured as a
  third, to show what dropping it gave. Raw's table has two b-trees (its rows and its claim index); a
  djobs job needs at least three (its rows, the id key every lookup goes through, the claim index), so this
  line says what the statement alone can cost at best, whatever the Python around it.

A profile points at what to change; this says how much each part could give at most.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

BATCH = 100


def _open(directory: str) -> tuple[Any, Any]:
    import djobs
    from djobs.proof.handlers import register_bench

    store = djobs.connect("sqlite:///" + os.path.join(directory, "jobs.db"))
    queue = djobs.Queue(store)
    register_bench(queue)
    queue.enqueue_many([djobs.Sub("bench.noop", {}) for _ in range(BATCH)])  # schema and statement caches warm
    return store, queue


def _per_job(jobs: int, run: Callable[[str], float]) -> float:
    """`run(directory)` returns seconds for `jobs` jobs; µs a job."""
    directory = tempfile.mkdtemp(prefix="djobs_enqcost_")
    try:
        return run(directory) / jobs * 1e6
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def measures(jobs: int) -> dict[str, Callable[[str], float]]:
    import djobs
    from djobs import validate
    from djobs.jobs import new_ids
    from djobs.proof.raw import RawSqlite
    from djobs.storage.dialect import IS_CLAIMABLE

    batches = jobs // BATCH

    def raw(d: str) -> float:
        r = RawSqlite(os.path.join(d, "raw.db"))
        r.setup()
        return jobs / r.enqueue_batch(jobs, BATCH)

    def timed(d: str, prepare: Callable[[Any, Any], Callable[[int], Any]]) -> float:
        """Seconds for `batches` calls of what `prepare(store, queue)` returns (it gets the batch's number),
        on a fresh database; the preparing is not timed."""
        store, queue = _open(d)
        try:
            step = prepare(store, queue)
            t0 = time.perf_counter()
            for i in range(batches):
                step(i)
            return time.perf_counter() - t0
        finally:
            store.close()

    def subs_of(n: int) -> list[Any]:
        return [djobs.Sub("bench.noop", {}) for _ in range(n)]

    def whole(d: str) -> float:
        def prepare(store: Any, queue: Any) -> Callable[[int], Any]:
            return lambda i: queue.enqueue_many(subs_of(BATCH))

        return timed(d, prepare)

    def subs(d: str) -> float:
        return timed(d, lambda store, queue: lambda i: subs_of(BATCH))

    def new_jobs(d: str) -> float:
        batch = subs_of(BATCH)
        return timed(d, lambda store, queue: lambda i: queue.new_jobs(batch))

    def check(d: str) -> float:
        def prepare(store: Any, queue: Any) -> Callable[[int], Any]:
            made = queue.new_jobs(subs_of(BATCH))
            return lambda i: validate.new_jobs(made)

        return timed(d, prepare)

    def insert_jobs(d: str) -> float:
        def prepare(store: Any, queue: Any) -> Callable[[int], Any]:
            made = [queue.new_jobs(subs_of(BATCH)) for _ in range(batches)]
            return lambda i: store.insert_jobs(made[i])

        return timed(d, prepare)

    def statement(d: str) -> float:
        store, queue = _open(d)
        sent: list[tuple[str, list[Any]]] = []
        send = store.db.execute_sql

        def record(sql: str, params: Any = None, *args: Any, **kwargs: Any) -> Any:
            sent.append((sql, list(params or ())))
            return send(sql, params, *args, **kwargs)

        store.db.execute_sql = record
        ids = queue.enqueue_many(subs_of(BATCH))
        store.close()
        sql, params = next((s, p) for s, p in sent if "INSERT INTO djobs_jobs" in s and len(p) > BATCH)
        at = [params.index(i) for i in ids]  # where the statement takes each row's id
        conn = sqlite3.connect(os.path.join(d, "jobs.db"), isolation_level=None)
        try:
            conn.execute("PRAGMA synchronous=NORMAL")
            spent = 0.0
            for _ in range(batches):
                for i, job_id in zip(at, new_ids(BATCH), strict=True):
                    params[i] = job_id
                t0 = time.perf_counter()
                conn.execute(sql, params)
                spent += time.perf_counter() - t0
            return spent
        finally:
            conn.close()

    def floor(indexes: tuple[str, ...]) -> Callable[[str], float]:
        def run(d: str) -> float:
            _open(d)[0].close()  # djobs's schema, whose table the copy takes its columns from
            conn = sqlite3.connect(os.path.join(d, "jobs.db"), isolation_level=None)
            try:
                conn.execute("PRAGMA synchronous=NORMAL")
                conn.execute("CREATE TABLE f AS SELECT * FROM djobs_jobs WHERE 0")
                for i, cols in enumerate(indexes):
                    conn.execute(f"CREATE {'UNIQUE ' if cols == '(id)' else ''}INDEX f{i} ON f {cols}")
                sql = (
                    "INSERT INTO f (id, type, queue, args, priority, status, attempt, max_retries, run_at, created_at, "
                    "updated_at, pause_requested) VALUES (?, 'bench.noop', 'default', '{}', 0, 'pending', 0, 3, ?, ?, ?, 0)"
                )
                spent = 0.0
                for _ in range(batches):
                    ids, now = new_ids(BATCH), time.time()
                    t0 = time.perf_counter()
                    conn.execute("BEGIN IMMEDIATE")
                    conn.executemany(sql, [(i, now, now, now) for i in ids])
                    conn.execute("COMMIT")
                    spent += time.perf_counter() - t0
                return spent
            finally:
                conn.close()

        return run

    key = ("(id)",)
    claim = (*key, f"(queue, priority DESC, run_at, id) WHERE {IS_CLAIMABLE}")
    return {
        "raw batch insert (executemany, one transaction)": raw,
        "enqueue_many, the whole call": whole,
        "  the caller's Subs": subs,
        "  Queue.new_jobs (options, args, ids)": new_jobs,
        "  validate.new_jobs (storage's check)": check,
        "  storage.insert_jobs (check, statement, commit)": insert_jobs,
        "    the insert statement alone, plain sqlite3": statement,
        "floor: the rows alone, no index": floor(()),
        "  + the id key": floor(key),
        "  + the claim index": floor(claim),
        "  + a (queue, status) index (gone since schema 6)": floor((*claim, "(queue, status)")),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--jobs", type=int, default=10_000)
    p.add_argument("--repeat", type=int, default=5)
    opts = p.parse_args(argv)
    jobs = max(BATCH, opts.jobs // BATCH * BATCH)
    load0 = os.getloadavg()[0]
    found: dict[str, list[float]] = {}
    for _ in range(opts.repeat):  # interleaved, so a slow moment of the machine touches every line alike
        for name, run in measures(jobs).items():
            found.setdefault(name, []).append(_per_job(jobs, run))
    print(f"SQLite {sqlite3.sqlite_version}, {jobs:,} jobs in batches of {BATCH}, medians of {opts.repeat} (µs a job)")
    for name, values in found.items():
        print(f"{name:<52} {statistics.median(values):7.2f}")
    print(f"load average {load0:.2f} → {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
