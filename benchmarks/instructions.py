"""SQLite's hot paths counted in CPU instructions, beside raw SQL: figures that do not move with the machine.

    .venv/bin/python benchmarks/instructions.py                   # every measure, about four minutes
    .venv/bin/python benchmarks/instructions.py --only limits --jobs 2000

Wall-clock rates on a shared two-core VM swing by a quarter between runs of one commit, and by half when
other tenants take the CPU, so a change worth a few per cent cannot be seen in `run.py`. On SQLite every
instruction of the work runs in this process (Python, Peewee, the sqlite3 module and SQLite itself), so
`valgrind --tool=callgrind` counts it, and the count repeats within about 2 % whatever else the machine
does (ids, hash seeds and the WAL's checkpoints differ between runs). What a count leaves out is waiting: `fsync`, cache misses, lock waits, the GIL handed
between threads. Read it as the CPU cost of the work, not as its speed.

Each workload runs in a child process under callgrind twice, doing the work for N and for 3N jobs after
the same set-up (the database created, the jobs to drain inserted up front: 3N in both runs), so start-up,
imports and set-up cancel in the difference: instructions a job = (count(3N) - count(N)) / 2N.

- `enqueue`: `Queue.enqueue_many` of 100 no-op jobs (the caller's `Sub`s made in the loop, as `run.py`
  times it) against raw's `executemany` of 100 rows in one transaction (`djobs.proof.raw`);
- `rounds`: the dispatcher's round, `storage.cycle` completing the previous round's 10 jobs and claiming 10
  in one transaction, against raw claiming 10 in one statement and completing them in a second transaction;
- `limits`: the same rounds on a queue with no limits, with queue-level `running` and `rate` that never
  bind, and with 20 keys without limits, with `key_running`, with `key_rate` and with both, none of them
  binding (`claim_limits.py`'s variants, and each per-key limit alone). A claim under per-key limits
  reuses its list of due keys for `limits.KEYS_TTL` seconds of wall time; under callgrind the process runs
  some 50 times slower, so the child stretches that period by as much, to list the keys about as often per
  job as a real run does.

"× raw" is raw's count over djobs's, comparable to the throughput ratios of `run.py` (higher is better);
"time ×" for the limits is the count over the baseline's (lower is better), as `claim_limits.py` reports.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

BATCH = 100  # jobs per enqueue_many
ROUND = 10  # jobs per claim
SLOWDOWN = 50  # roughly how much slower a process runs under callgrind (see the docstring)
WORKLOADS = {
    "enqueue": ("djobs-enqueue", "raw-enqueue"),
    "rounds": ("djobs-rounds", "raw-rounds"),
    "limits": ("limits-none", "limits-queue", "limits-keyed", "limits-key_running", "limits-key_rate", "limits-keys"),
}


# -- the children: one workload each, of `n` jobs --------------------------------------------------------
def _child(workload: str, n: int, seed: int, directory: str) -> None:
    if workload.endswith("enqueue"):
        _enqueue(workload, n, directory)
    elif workload.startswith("raw"):
        _raw_rounds(n, seed, directory)
    else:
        variant = "none" if workload == "djobs-rounds" else workload.removeprefix("limits-")  # the same rounds
        _djobs_rounds(variant, n, seed, directory)


def _enqueue(workload: str, n: int, directory: str) -> None:
    if workload == "raw-enqueue":
        from djobs.proof.raw import RawSqlite

        raw = RawSqlite(os.path.join(directory, "raw.db"))
        raw.setup()
        raw.enqueue_batch(BATCH, BATCH)  # statement caches warm, as for djobs
        raw.enqueue_batch(n, BATCH)
        return
    import djobs
    from djobs.proof.handlers import register_bench

    store = djobs.connect("sqlite:///" + os.path.join(directory, "jobs.db"))
    queue = djobs.Queue(store)
    register_bench(queue)
    queue.enqueue_many([djobs.Sub("bench.noop", {}) for _ in range(BATCH)])
    for _ in range(n // BATCH):
        queue.enqueue_many([djobs.Sub("bench.noop", {}) for _ in range(BATCH)])
    store.close()


def _raw_rounds(n: int, seed: int, directory: str) -> None:
    from djobs.proof.raw import RawSqlite

    raw = RawSqlite(os.path.join(directory, "raw.db"))
    raw.setup()
    conn = raw.connect()
    raw._seed(conn, seed)
    done = 0
    while done < n:
        rows = raw.claim(conn, "bench-worker", ROUND)
        raw.complete_many(conn, [r[0] for r in rows], "bench-worker")
        done += len(rows)
    conn.close()


def _djobs_rounds(variant: str, n: int, seed: int, directory: str) -> None:
    import djobs
    import djobs.storage.limits as limits_mod
    from djobs.jobs import NewJob, new_id
    from djobs.outcomes import ClaimRequest, Outcome, OutcomeKind

    limits_mod.KEYS_TTL *= SLOWDOWN
    store = djobs.connect("sqlite:///" + os.path.join(directory, "jobs.db"))
    if variant == "queue":
        store.set_limits("default", djobs.Rate(1e8, 1), 1_000_000, None, None)
    elif variant == "key_running":
        store.set_limits("default", None, None, None, 1_000_000)
    elif variant == "key_rate":
        store.set_limits("default", None, None, djobs.Rate(1e8, 1), None)
    elif variant == "keys":
        store.set_limits("default", None, None, djobs.Rate(1e8, 1), 1_000_000)
    keyed = variant != "none" and variant != "queue"
    rows = [NewJob(new_id(), "noop", "default", "{}", 0, 3, key=f"k{i % 20}" if keyed else None) for i in range(seed)]
    for i in range(0, len(rows), 500):
        store.insert_jobs(rows[i : i + 500])
    req = ClaimRequest("default", ("noop",), ROUND, False, variant not in ("none", "keyed"))
    done: list[Any] = []
    taken = turn = 0
    while taken < n:
        outs = [Outcome(OutcomeKind.COMPLETE, c.job.id, c.job.attempt, result_json="null") for c in done]
        done = store.cycle("bench-worker", outs, [req], (), (), False, False, turn).claims
        taken += len(done)
        turn += 1
    store.close()


# -- the parent: counts and ratios --------------------------------------------------------------------------
def count(workload: str, n: int, seed: int) -> int:
    """Instructions of one child doing `workload` for `n` jobs (after inserting `seed` jobs to drain)."""
    directory = tempfile.mkdtemp(prefix="djobs_instr_")
    try:
        cmd = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable, __file__,
               "--child", workload, str(n), str(seed), directory]  # fmt: skip
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
        done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=3600)
        found = re.search(r"Collected : (\d+)", done.stderr)
        if done.returncode != 0 or found is None:
            raise RuntimeError(f"{workload} {n}: exit {done.returncode}\n{done.stderr[-2000:]}")
        return int(found.group(1))
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def per_job(workloads: list[str], n: int, parallel: int) -> dict[str, float]:
    runs = [(w, size) for w in workloads for size in (n, 3 * n)]
    with ThreadPoolExecutor(parallel) as pool:
        counts = dict(zip(runs, pool.map(lambda r: count(*r, 3 * n), runs), strict=True))
    return {w: (counts[(w, 3 * n)] - counts[(w, n)]) / (2 * n) for w in workloads}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--only", choices=sorted(WORKLOADS), action="append", help="one measure (repeatable)")
    p.add_argument("--jobs", type=int, default=2000, help="N: the runs do N and 3N jobs")
    p.add_argument("--parallel", type=int, default=os.cpu_count() or 1, help="children under valgrind at once")
    p.add_argument("--child", nargs=4, metavar=("WORKLOAD", "N", "SEED", "DIR"), help=argparse.SUPPRESS)
    opts = p.parse_args(argv)
    if opts.child:
        _child(opts.child[0], int(opts.child[1]), int(opts.child[2]), opts.child[3])
        return 0
    if opts.jobs < BATCH or opts.jobs % BATCH:
        p.error(f"--jobs must be a positive multiple of {BATCH}")
    if shutil.which("valgrind") is None:
        print("valgrind is not installed (Debian: apt-get install valgrind)", file=sys.stderr)
        return 2
    import sqlite3

    print(f"SQLite {sqlite3.sqlite_version}, Python {sys.version.split()[0]}; thousands of instructions a job, "
          f"from runs of {opts.jobs:,} and {3 * opts.jobs:,} jobs")  # fmt: skip
    for measure in opts.only or list(WORKLOADS):
        got = per_job(list(WORKLOADS[measure]), opts.jobs, opts.parallel)
        if measure == "limits":
            base, keyed = got["limits-none"], got["limits-keyed"]
            for w, c in got.items():
                also = f"   {c / keyed:.2f}× the keyed jobs without limits" if w.startswith("limits-key_") or w == "limits-keys" else ""
                print(f"  {w:<18} {c / 1000:9.1f}   time {c / base:.2f}×{also}")
        else:
            mine, raw = (got[w] for w in WORKLOADS[measure])
            print(f"  {measure:<8} djobs {mine / 1000:9.1f}   raw {raw / 1000:9.1f}   {raw / mine:.2f}× raw")
    return 0


if __name__ == "__main__":
    sys.exit(main())
