"""What the leader's upkeep costs on big tables when there is nothing to do, on SQLite.

    .venv/bin/python benchmarks/upkeep.py                     # 200,000 finished jobs, 500,000 events
    .venv/bin/python benchmarks/upkeep.py --jobs 1000000 --events 2000000

The leader runs retention every 5 minutes, the event trim every minute and the fan-out sweep every few
seconds; a duplicate enqueue looks up its key's holder. Each must cost an index probe, not a read of tables
that only grow. Fills one SQLite file with finished jobs, old-enough-to-keep events, decided fan-outs and one
job holding a unique key, then times each operation (median of `--runs`), with the load average.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def _median_ms(fn: Callable[[], Any], runs: int) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--jobs", type=int, default=200_000)
    p.add_argument("--events", type=int, default=500_000)
    p.add_argument("--fanouts", type=int, default=100_000)
    p.add_argument("--runs", type=int, default=5)
    opts = p.parse_args(argv)

    import djobs
    from djobs.jobs import NewJob, Retention, new_id

    with tempfile.TemporaryDirectory() as tmp:
        store = djobs.connect(f"sqlite:///{tmp}/upkeep.db")
        try:
            for start in range(0, opts.jobs, 500):
                store.insert_jobs([NewJob(new_id(), "t", "default", "{}", 0, 0) for _ in range(min(500, opts.jobs - start))])
            store.insert_jobs([NewJob(new_id(), "t", "default", "{}", 0, 0, unique_key="held")])
            db: Any = store.db
            # Filled with SQL: what matters is how many rows there are, not how they got there.
            db.execute_sql("UPDATE djobs_jobs SET status = 'completed', completed_at = updated_at WHERE unique_key IS NULL")
            db.execute_sql(
                "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?) "
                "INSERT INTO djobs_events (ts, kind, data) SELECT 1e10 + i, 'x', NULL FROM n", (opts.events,)
            )
            db.execute_sql(
                "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?) INSERT INTO djobs_fanouts "
                "(id, parent_id, call_key, strategy, total, timeout_at, cancel_on_parent_failure, decided, created_at) "
                "SELECT 'f' || i, 'p' || i, 'k', '{}', 3, 5.0, 0, 'all', 1.0 FROM n", (opts.fanouts,)
            )

            def duplicate() -> None:
                try:
                    store.insert_jobs([NewJob(new_id(), "t", "default", "{}", 0, 0, unique_key="held")])
                except djobs.DuplicateJob:
                    return
                raise AssertionError("the duplicate was written")

            load0 = os.getloadavg()[0]
            keep = Retention(completed=1e9, failed=1e9, cancelled=1e9)
            measures: list[tuple[str, Callable[[], Any]]] = [
                ("apply_retention", lambda: store.apply_retention(keep)),
                ("purge completed+failed", lambda: store.purge(("completed", "failed"), 1e9)),
                ("trim_events", lambda: store.trim_events(1e12, 100_000_000)),
                ("fanouts_due", store.fanouts_due),
                ("paused_jobs", store.paused_jobs),
                ("a refused duplicate", duplicate),
            ]
            print(f"{opts.jobs:,} finished jobs, {opts.events:,} events, {opts.fanouts:,} decided fan-outs; nothing to do")
            for name, fn in measures:
                print(f"  {name:<24} {_median_ms(fn, opts.runs):8.2f} ms")
            print(f"load average {load0:.2f} → {os.getloadavg()[0]:.2f}")
        finally:
            store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
