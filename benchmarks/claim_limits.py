"""What fleet-wide limits cost the claim: the same claim+complete rounds with and without limits.

    .venv/bin/python benchmarks/claim_limits.py                  # SQLite and PostgreSQL, 5,000 jobs
    .venv/bin/python benchmarks/claim_limits.py --backend sqlite --jobs 20000 --batch 10
    .venv/bin/python benchmarks/claim_limits.py --keys 500 --jobs 10000   # many keys due at once
    .venv/bin/python benchmarks/claim_limits.py --backlog 200000          # the same, 200,000 more waiting

One process drives storage directly, the way a worker's dispatcher does: each round completes the jobs of the
previous one and claims `--batch` more, in one transaction (`storage.cycle`). Three variants run interleaved,
each on a fresh database, `--repeat` times (medians): no limits (the baseline), queue limits that never bind
(`running` and `rate` far above the load: the cost of the row lock, the count and the bucket), and per-key
limits that never bind (jobs spread over `--keys` keys, 20 by default). Reported as jobs/s and as the time
ratio to the baseline measured in the same run, with the load average. Jobs with a key cost more to claim and
complete than jobs without one, limits or not (one more index holds them while they wait), so the same keyed
jobs also run without limits: the per-key row shows its ratio to both baselines, the cost of keys and limits
together and the cost of the limits alone.

`--backlog N` puts N more jobs in the queue behind the measured ones (the database's statistics refreshed, as
autovacuum would): what a claim costs must not grow with the number of jobs waiting.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # this checkout's djobs, before any import of it

from djobs.proof.dbutil import fresh_url  # noqa: E402

DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/test"


def run_once(url: str, variant: str, jobs: int, batch: int, keys: int = 20, backlog: int = 0) -> float:
    import djobs
    from djobs.jobs import NewJob, new_id
    from djobs.outcomes import ClaimRequest, Outcome, OutcomeKind

    store = djobs.connect(url)
    try:
        limited = variant in ("queue", "keys")  # the claim through limits only where some are set
        if variant == "queue":
            store.set_limits("default", djobs.Rate(1e8, 1), 1_000_000, None, None)
        elif variant == "keys":
            store.set_limits("default", None, None, djobs.Rate(1e8, 1), 1_000_000)
        rows = [
            NewJob(new_id(), "noop", "default", "{}", 0, 3, key=f"k{i % keys}" if variant in ("keyed", "keys") else None)
            for i in range(jobs + backlog)
        ]
        for i in range(0, len(rows), 500):
            store.insert_jobs(rows[i : i + 500])
        if backlog:
            store.db.execute_sql("ANALYZE")  # as autovacuum would after such a load
        req = ClaimRequest("default", ("noop",), batch, False, limited)
        done: list[Any] = []
        t0 = time.perf_counter()
        turn = claimed = 0
        while True:
            outs = [Outcome(OutcomeKind.COMPLETE, c.job.id, c.job.attempt, result_json="null") for c in done]
            claims = [dataclasses.replace(req, limit=min(batch, jobs - claimed))] if claimed < jobs else []
            result = store.cycle("bench-worker", outs, claims, (), (), False, False, turn)
            turn += 1
            done = result.claims
            claimed += len(done)
            if not done:
                break
        elapsed = time.perf_counter() - t0
        assert store.count_jobs(status="completed") == jobs, "not every job completed"
        return jobs / elapsed
    finally:
        store.close()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--backend", choices=("sqlite", "postgres", "both"), default="both")
    p.add_argument("--pg-url", default=os.environ.get("DJOBS_BENCH_PG_URL") or os.environ.get("DJOBS_TEST_PG_URL") or DEFAULT_PG)
    p.add_argument("--jobs", type=int, default=5000)
    p.add_argument("--batch", type=int, default=10)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--keys", type=int, default=20, help="distinct keys of the keyed jobs")
    p.add_argument("--backlog", type=int, default=0, help="jobs waiting behind the measured ones")
    opts = p.parse_args(argv)
    import tempfile

    backends = ["sqlite", "postgres"] if opts.backend == "both" else [opts.backend]
    load0 = os.getloadavg()[0]
    print(f"{'backend':<9} {'variant':<32} {'jobs/s':>9} {'time ×':>7}")
    with tempfile.TemporaryDirectory() as tmp:
        for backend in backends:
            rates: dict[str, list[float]] = {"none": [], "queue": [], "keyed": [], "keys": []}
            for _ in range(opts.repeat):
                for variant in rates:
                    url, cleanup = fresh_url(backend, opts.pg_url, Path(tmp), "bench_limits")
                    try:
                        rates[variant].append(run_once(url, variant, opts.jobs, opts.batch, opts.keys, opts.backlog))
                    finally:
                        if cleanup:
                            cleanup()
            base = statistics.median(rates["none"])
            keyed = statistics.median(rates["keyed"])
            names = {"none": "no limits", "queue": "queue running + rate", "keyed": f"no limits, {opts.keys} keys",
                     "keys": f"key_running + key_rate, {opts.keys} keys"}  # fmt: skip
            for variant, values in rates.items():
                m = statistics.median(values)
                vs_keyed = f"   {keyed / m:.2f}× the keyed jobs without limits" if variant == "keys" else ""
                print(f"{backend:<9} {names[variant]:<32} {m:>9,.0f} {base / m:>6.2f}×{vs_keyed}")
    print(f"load average {load0:.2f} → {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
