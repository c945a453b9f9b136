"""What tracing costs: enqueue and enqueue-then-run throughput with OpenTelemetry absent, installed without
an SDK, and with the SDK recording every span into an exporter that drops them.

    .venv/bin/python benchmarks/tracing.py                       # SQLite, 3,000 jobs, 3 interleaved rounds
    .venv/bin/python benchmarks/tracing.py --backend postgres --jobs 2000

Each mode runs in its own process (OpenTelemetry's tracer provider is process-global; "absent" blocks the
import the way a missing package does) over a throwaway database: `n` single enqueues, `n` jobs enqueued in
batches of 100, then one in-process burst worker (4 slots) draining the 2n no-op jobs (its start-up timed too). One enqueue
before the clock starts pays the import of opentelemetry. Rounds are
interleaved so a change in the machine's load hits every mode alike; medians are printed with the ratio to
"absent". Then each process times the hooks alone, as their call sites use them (µs per call), which a busy
machine disturbs far less than database round trips (the run hook's figure includes making a stand-in
entry, about 0.4 µs). No exporter I/O is measured: the SDK's BatchSpanProcessor hands spans to a background thread.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

MODES = ("absent", "api-only", "sdk")

CHILD = """
import json, sys, time
mode, url, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
if mode == "absent":
    sys.modules["opentelemetry"] = None
elif mode == "sdk":
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

    class Drop(SpanExporter):
        def export(self, spans):
            return SpanExportResult.SUCCESS

    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(Drop()))
    trace.set_tracer_provider(provider)
import djobs
from djobs.proof.dbutil import throwaway

with throwaway(url, prefix="djobs_bench_tracing") as db:
    store = djobs.connect(db.url)
    q = djobs.Queue(store)
    q.register("noop", lambda args: None)
    q.enqueue("noop", -1)  # not timed: the first enqueue imports opentelemetry (when there is one)
    t0 = time.perf_counter()
    for i in range(n):
        q.enqueue("noop", i)
    t1 = time.perf_counter()
    for start in range(0, n, 100):
        q.enqueue_many([djobs.Sub("noop", i) for i in range(start, min(n, start + 100))])
    t2 = time.perf_counter()
    q.worker(queues={"default": 4}, burst=True, scheduler=False).run()
    t3 = time.perf_counter()
    left = q.count_jobs(status="completed")
    job = q.list_jobs(limit=1)[0]
    store.close()
assert left == 2 * n + 1, left

# The hooks alone, as the call sites use them, without the database's noise.
from types import SimpleNamespace
from djobs import tracing
from djobs.jobs import NewJob

new = NewJob(job.id, job.type, job.queue, "1", 0, 0)
carried = None  # what this mode stores in a job: nothing unless a recording SDK made the enqueue span
if tracing.on:
    with tracing.producing([new]) as made:
        carried = made[0].trace


def hook_enqueue():
    if tracing.on:
        with tracing.producing([new]):
            pass


def hook_run():
    entry = SimpleNamespace(job=job, trace=carried, span=None)
    with tracing.running(entry, "w") if tracing.on else tracing.OFF:
        pass
    if entry.span is not None:
        tracing.end_run(entry, "completed", None)


def per_call(fn, k=20000):
    t = time.perf_counter()
    for _ in range(k):
        fn()
    return (time.perf_counter() - t) / k * 1e6


print(json.dumps({"enqueue": n / (t1 - t0), "enqueue_many": n / (t2 - t1), "run": (2 * n + 1) / (t3 - t2),
                  "hook_enqueue": per_call(hook_enqueue), "hook_run": per_call(hook_run)}))
"""

MEASURES = (("enqueue", "enqueue, 1 per call"), ("enqueue_many", "enqueue, batches of 100"), ("run", "run (burst worker, 4 slots)"))
HOOKS = (("hook_enqueue", "enqueue hook alone"), ("hook_run", "run hook alone (start, end)"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backend", choices=("sqlite", "postgres"), default="sqlite")
    ap.add_argument("--pg-url", default=os.environ.get("DJOBS_BENCH_PG_URL") or os.environ.get("DJOBS_TEST_PG_URL")
                    or "postgresql://postgres@127.0.0.1:5432/test")  # fmt: skip
    ap.add_argument("--jobs", type=int, default=3000)
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    url = a.pg_url if a.backend == "postgres" else ""
    load = os.getloadavg()[0]
    got: dict[str, list[dict[str, float]]] = {m: [] for m in MODES}
    for _ in range(a.repeat):
        for mode in MODES:
            out = subprocess.run([sys.executable, "-c", CHILD, mode, url, str(a.jobs)], capture_output=True, text=True)
            if out.returncode != 0:
                sys.exit(f"{mode}: {out.stderr}")
            got[mode].append(json.loads(out.stdout))
    print(f"backend {a.backend}, {a.jobs} jobs per measure, median of {a.repeat}, "
          f"load average {load:.2f} → {os.getloadavg()[0]:.2f}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")  # fmt: skip
    print(f"| measure (jobs/s) | {' | '.join(MODES)} | api-only/absent | sdk/absent |")
    print("|---|" + "---|" * (len(MODES) + 2))
    for key, label in MEASURES:
        med = {m: statistics.median(r[key] for r in got[m]) for m in MODES}
        cells = " | ".join(f"{med[m]:,.0f}" for m in MODES)
        print(f"| {label} | {cells} | {med['api-only'] / med['absent']:.2f}× | {med['sdk'] / med['absent']:.2f}× |")
    print("\n| hook cost (µs per call) | " + " | ".join(MODES) + " |")
    print("|---|" + "---|" * len(MODES))
    for key, label in HOOKS:
        med = {m: statistics.median(r[key] for r in got[m]) for m in MODES}
        print(f"| {label} | " + " | ".join(f"{med[m]:.2f}" for m in MODES) + " |")


if __name__ == "__main__":
    main()
