"""Signal round trip: `queue.signal(...)` in one process → the waiting handler resumed in a worker process.

    .venv/bin/python benchmarks/signal_roundtrip.py                        # SQLite and PostgreSQL, 100 samples
    .venv/bin/python benchmarks/signal_roundtrip.py --backend postgres --samples 300

One idle worker process (concurrency 2) serves two job types. `bench.wait` waits for a signal and returns
the time its `wait_for_signal` returned; a sample enqueues one, waits until it is `waiting` (its slot
free), takes the time and sends the signal (the payload is irrelevant), then reads the result: send →
handler resumed, which is the wake-up (run_at made due, NOTIFY on PostgreSQL, `data_version` on SQLite),
the claim, the replay (checkpoints read) and the consuming transaction. Beside it, measured in the same
run and interleaved sample by sample, the pickup floor: `bench.start` returns the time it started, for a
plain enqueue → handler start with the same worker. Reported as p50/p95 in milliseconds, with the load
average (figures from a busy machine are not comparable with an idle one's).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # this checkout's djobs, before any import of it

from djobs.proof.dbutil import fresh_url  # noqa: E402

DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/test"


def serve(url: str) -> None:
    """The worker process: the two handlers, then `worker.run()` until SIGTERM."""
    import djobs

    queue = djobs.Queue(djobs.connect(url))

    @queue.handler("bench.wait", retries=0)
    def wait(ctx: djobs.Context, args: Any) -> float:
        ctx.wait_for_signal("go")
        return time.time()

    @queue.handler("bench.start", retries=0)
    def start(args: Any) -> float:
        return time.time()

    worker = queue.worker(queues={"default": 2}, scheduler=False)
    print("ready", flush=True)
    worker.run()


def _result(queue: Any, job_id: str, status: str = "completed", timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = queue.get_job(job_id)
        if job is not None and job.status.value == status:
            return job.result
        if job is not None and job.status.value == "failed":
            raise RuntimeError(f"job {job_id} failed: {job.last_error}")
        time.sleep(0.002)  # the times compared are the handler's own: polling slower costs no precision
    raise TimeoutError(f"job {job_id} not {status} within {timeout:g}s")


def measure(url: str, samples: int) -> dict[str, list[float]]:
    import djobs

    queue = djobs.Queue(djobs.connect(url), strict=False)
    proc = subprocess.Popen(
        [sys.executable, __file__, "--serve", url], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready", "the worker did not start"
        time.sleep(1.0)  # registered and idle
        out: dict[str, list[float]] = {"signal": [], "pickup": []}
        for i in range(samples + 5):  # the first 5 warm up
            job_id = queue.enqueue("bench.wait", None)
            _result(queue, job_id, "waiting")
            time.sleep(0.02)  # the worker is idle again, as it is when a real signal comes
            sent = time.time()
            queue.signal(job_id, "go")
            resumed = _result(queue, job_id)
            sent_plain = time.time()
            started = _result(queue, queue.enqueue("bench.start", None))
            if i >= 5:
                out["signal"].append((resumed - sent) * 1000)
                out["pickup"].append((started - sent_plain) * 1000)
            time.sleep(0.02)
        return out
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        queue.storage.close()


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--backend", choices=("sqlite", "postgres", "both"), default="both")
    p.add_argument("--pg-url", default=os.environ.get("DJOBS_BENCH_PG_URL") or os.environ.get("DJOBS_TEST_PG_URL") or DEFAULT_PG)
    p.add_argument("--samples", type=int, default=100)
    p.add_argument("--serve", metavar="URL", help=argparse.SUPPRESS)
    opts = p.parse_args(argv)
    if opts.serve:
        serve(opts.serve)
        return 0
    backends = ["sqlite", "postgres"] if opts.backend == "both" else [opts.backend]
    load0 = os.getloadavg()[0]
    print(f"{'backend':<9} {'measure':<34} {'p50 ms':>8} {'p95 ms':>8} {'mean ms':>8}")
    with tempfile.TemporaryDirectory() as tmp:
        for backend in backends:
            url, cleanup = fresh_url(backend, opts.pg_url, Path(tmp), "bench_signal")
            try:
                got = measure(url, opts.samples)
            finally:
                if cleanup:
                    cleanup()
            names = {"signal": "signal → handler resumed", "pickup": "enqueue → handler start (floor)"}
            for key, values in got.items():
                print(
                    f"{backend:<9} {names[key]:<34} {_pct(values, 0.5):>8.1f} {_pct(values, 0.95):>8.1f} "
                    f"{statistics.fmean(values):>8.1f}"
                )
    print(f"{opts.samples} samples each; load average {load0:.2f} → {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
