"""`djobs bench`: djobs's speed on this machine, each figure beside raw SQL doing the same work.

    report = djobs.bench.run([None, "postgresql://postgres@127.0.0.1/test"], jobs=10_000, workers=(1, 2))
    for row in report.rows:
        print(row.backend, row.metric, row.djobs, row.raw, row.ratio)
    print(report.reading)            # one line: which backend suits this machine
    print(report.to_json())

Each target is a database URL (None: a temp SQLite file). Every measure runs in a throwaway database
(a fresh PostgreSQL schema, a temp SQLite file) and its raw-SQL baseline (`djobs.proof.raw`) right after it
in tables of its own, so the ratio compares numbers from the same run:

- enqueue, one job per call, and batches of 100 (`enqueue_many`);
- end to end: `jobs` no-op jobs enqueued first, then drained by 1 and by N worker processes
  (`python -m djobs.proof.worker --burst`), timed from "go" to the last process exiting; raw: claim 1 +
  complete 1 per transaction in as many processes, and (a second row) claim 10 + complete 10 per transaction;
- idle dispatch latency p50/p95/p99, enqueue -> handler start, one idle worker process; raw: the pickup
  floor (LISTEN/NOTIFY on PostgreSQL, `PRAGMA data_version` polled every 1 ms on SQLite);
- durable steps/s: workflows of 10 `ctx.call` no-op steps; raw: one checkpoint row per step;
- fan-out round trip: a parent fans out 100 no-op sub-jobs, enqueue -> parent completed (database times).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from typing import Any

from djobs.proof.dbutil import Throwaway, is_postgres, throwaway
from djobs.proof.procs import WorkerProcess
from djobs.proof.raw import Raw, RawPostgres, RawSqlite
from djobs.proof.report import BenchReport, BenchRow, environment, median, percentile

log = logging.getLogger("djobs.bench")

Progress = Callable[[str, float], None]

ENQUEUE_SINGLE = "enqueue, 1 per call"
ENQUEUE_BATCH = "enqueue, batches of 100"
LATENCY = "dispatch latency"
STEPS = "durable steps (10-step workflow)"
FANOUT = "fan-out round trip"
RAW_BATCH = 10  # jobs per claim and per completing transaction in the batched raw baseline


def end_to_end_metric(processes: int) -> str:
    return f"end-to-end, {processes} process{'es' if processes != 1 else ''}"


class _Bench:
    def __init__(self, url: str | None, *, jobs: int, workers: Sequence[int], enqueue_jobs: int,
                 latency_samples: int, latency_gap: float, workflows: int, steps: int, fanout_width: int,
                 fanout_rounds: int, concurrency: int, repeat: int, tick: Callable[[str], None]) -> None:
        self.url = url
        self.backend = "postgres" if is_postgres(url) else "sqlite"
        self.jobs = jobs
        self.workers = workers
        self.enqueue_jobs = enqueue_jobs
        self.latency_samples = latency_samples
        self.latency_gap = latency_gap
        self.workflows = workflows
        self.steps = steps
        self.fanout_width = fanout_width
        self.fanout_rounds = fanout_rounds
        self.concurrency = concurrency
        self.repeat = repeat
        self.tick = tick
        self.rows: list[BenchRow] = []
        self.errors: list[str] = []

    # -- plumbing ----------------------------------------------------------------------------------------
    def _open(self, db: Throwaway) -> tuple[Any, Any]:
        import djobs
        from djobs.proof.handlers import register_bench

        store = djobs.connect(db.url)
        queue = djobs.Queue(store)
        register_bench(queue)
        return store, queue

    def _procs(self, db: Throwaway, n: int, *, burst: bool) -> list[WorkerProcess]:
        args = [db.url, "--role", "bench", "--concurrency", str(self.concurrency), "--no-scheduler"]
        if burst:
            args += ["--burst", "--wait-go"]
        procs = [WorkerProcess(args, os.path.join(db.directory or ".", "logs"), slot=i, stdin_pipe=burst)
                 for i in range(n)]
        for p in procs:
            p.start()
        try:
            for p in procs:
                p.wait_ready(60)
        except BaseException:
            self._stop(procs)
            raise
        return procs

    @staticmethod
    def _stop(procs: list[WorkerProcess]) -> None:
        for p in procs:
            if p.alive():
                p.terminate(timeout=30)

    def _drain_with(self, db: Throwaway, processes: int, expect: int, queue: Any) -> float:
        """Seconds for `processes` burst workers to finish all runnable work, from 'go' to the last exit."""
        procs = self._procs(db, processes, burst=True)
        try:
            t0 = time.perf_counter()
            for p in procs:
                p.go()
            for p in procs:
                p.wait(timeout=600)
            elapsed = time.perf_counter() - t0
        finally:
            self._stop(procs)
        done = sum(s.counts.get("completed", 0) for s in queue.queue_stats())
        if done < expect:
            tails = "\n".join(p.log_tail(5) for p in procs)
            raise RuntimeError(f"workers exited with {done} of {expect} jobs completed\n{tails}")
        return elapsed

    def _seed(self, queue: Any, job_type: str, args: Any, n: int) -> None:
        import djobs

        for start in range(0, n, 500):
            queue.enqueue_many([djobs.Sub(job_type, args) for _ in range(min(500, n - start))])

    def _row(self, metric: str, unit: str, mine: float | None, raw: float | None, *, higher: bool = True,
             note: str = "", samples: int = 0) -> None:
        self.rows.append(BenchRow(self.backend, metric, unit, mine, raw, higher, note, samples))

    def _measure(self, what: str, fn: Callable[[], Any]) -> Any:
        self.tick(f"{self.backend}: {what}")
        try:
            return fn()
        except Exception as exc:
            log.exception("bench %s %s failed", self.backend, what)
            self.errors.append(f"{self.backend} {what}: {type(exc).__name__}: {exc}")
            return None

    def _rates(self, what: str, mine: Callable[[], float], raw: Callable[[], float]) -> tuple[float | None, float | None]:
        """Median of `repeat` interleaved runs of djobs and of raw (None when every run failed)."""
        ds: list[float] = []
        rs: list[float] = []
        for _ in range(self.repeat):
            d = self._measure(f"{what} (djobs)", mine)
            r = self._measure(f"{what} (raw)", raw)
            ds += [d] if d is not None else []
            rs += [r] if r is not None else []
        return (median(ds) if ds else None), (median(rs) if rs else None)

    def _samples(self, what: str, mine: Callable[[], list[float]],
                 raw: Callable[[], list[float]]) -> tuple[list[float], list[float]]:
        """All samples of `repeat` interleaved runs of djobs and of raw."""
        ds: list[float] = []
        rs: list[float] = []
        for _ in range(self.repeat):
            ds += self._measure(f"{what} (djobs)", mine) or []
            rs += self._measure(f"{what} (raw)", raw) or []
        return ds, rs

    # -- measures ----------------------------------------------------------------------------------------
    def enqueue_single(self, raw: Raw) -> None:
        def mine() -> float:
            with throwaway(self.url, prefix="djobs_bench") as db:
                store, queue = self._open(db)
                try:
                    for _ in range(20):  # warm-up: first-use costs are not the steady rate
                        queue.enqueue("bench.noop", {})
                    n = self.enqueue_jobs
                    t0 = time.perf_counter()
                    for _ in range(n):
                        queue.enqueue("bench.noop", {})
                    return n / (time.perf_counter() - t0)
                finally:
                    store.close()

        raw.enqueue_single(20)
        d, r = self._rates("enqueue single", mine, lambda: raw.enqueue_single(self.enqueue_jobs))
        self._row(ENQUEUE_SINGLE, "jobs/s", d, r, note="one transaction per job", samples=self.enqueue_jobs)

    def enqueue_batch(self, raw: Raw) -> None:
        import djobs

        n = max(100, self.enqueue_jobs * 5 // 100 * 100)

        def mine() -> float:
            with throwaway(self.url, prefix="djobs_bench") as db:
                store, queue = self._open(db)
                try:
                    queue.enqueue_many([djobs.Sub("bench.noop", {}) for _ in range(100)])
                    t0 = time.perf_counter()
                    for _ in range(n // 100):
                        queue.enqueue_many([djobs.Sub("bench.noop", {}) for _ in range(100)])
                    return n / (time.perf_counter() - t0)
                finally:
                    store.close()

        d, r = self._rates("enqueue batch", mine, lambda: raw.enqueue_batch(n, 100))
        self._row(ENQUEUE_BATCH, "jobs/s", d, r, note="enqueue_many; raw: executemany, 1 txn", samples=n)

    def end_to_end(self, raw: Raw, processes: int) -> None:
        def mine() -> float:
            with throwaway(self.url, prefix="djobs_bench") as db:
                store, queue = self._open(db)
                try:
                    self._seed(queue, "bench.noop", {}, self.jobs)
                    return self.jobs / self._drain_with(db, processes, self.jobs, queue)
                finally:
                    store.close()

        metric = end_to_end_metric(processes)
        ds: list[float] = []
        rs: list[float] = []
        bs: list[float] = []
        for _ in range(self.repeat):  # interleaved: djobs, raw 1 per transaction, raw batched
            for out, what, fn in ((ds, "djobs", mine), (rs, "raw", lambda: raw.drain(self.jobs, processes)),
                                  (bs, "raw batched", lambda: raw.drain(self.jobs, processes, RAW_BATCH))):
                v = self._measure(f"{metric} ({what})", fn)
                out += [v] if v is not None else []
        d = median(ds) if ds else None
        self._row(metric, "jobs/s", d, median(rs) if rs else None,
                  note=f"{self.jobs} no-op jobs drained; raw: claim 1 + complete 1 per transaction", samples=self.jobs)
        self._row(f"{metric}, vs raw batched", "jobs/s", d, median(bs) if bs else None,
                  note=f"raw: claim {RAW_BATCH} in one statement + complete them in one transaction",
                  samples=self.jobs)

    def pickups(self, samples: int, gap: Callable[[], float], prefix: str = "djobs_bench") -> list[float]:
        """Enqueue -> handler start (seconds) of `samples` jobs, one idle worker process, `gap()` seconds apart;
        the handler returns its start time."""
        with throwaway(self.url, prefix=prefix) as db:
            store, queue = self._open(db)
            procs = self._procs(db, 1, burst=False)
            try:
                time.sleep(0.5)
                out = []
                for k in range(samples + 3):
                    time.sleep(gap())
                    t = time.time()
                    started = float(queue.result(queue.enqueue("bench.stamp", {}), timeout=30))
                    if k >= 3:  # the first pickups pay for warm-up
                        out.append(started - t)
                return out
            finally:
                self._stop(procs)
                store.close()

    def latency(self, raw: Raw) -> None:
        def mine() -> list[float]:
            return self.pickups(self.latency_samples, lambda: self.latency_gap)

        d, r = self._samples("dispatch latency", mine,
                             lambda: raw.pickup_latency(self.latency_samples, self.latency_gap))
        floor = "LISTEN/NOTIFY" if self.backend == "postgres" else "PRAGMA data_version polled every 1 ms"
        for p in (50, 95, 99):
            self._row(
                f"{LATENCY} p{p}", "ms",
                percentile(d, p) * 1000 if d else None,
                percentile(r, p) * 1000 if r else None,
                higher=False, note=f"enqueue -> handler start; raw: {floor}", samples=len(d),
            )

    def durable_steps(self, raw: Raw) -> None:
        def mine() -> float:
            with throwaway(self.url, prefix="djobs_bench") as db:
                store, queue = self._open(db)
                try:
                    self._seed(queue, "bench.workflow", {"steps": self.steps}, self.workflows)
                    return self.workflows * self.steps / self._drain_with(db, 1, self.workflows, queue)
                finally:
                    store.close()

        d, r = self._rates("durable steps", mine, lambda: raw.durable_steps(self.workflows, self.steps))
        self._row(STEPS, "steps/s", d, r, note=f"{self.workflows} workflows, 1 worker process; raw: one checkpoint row per transaction",
                  samples=self.workflows * self.steps)

    def fanout(self, raw: Raw) -> None:
        def mine() -> list[float]:
            with throwaway(self.url, prefix="djobs_bench") as db:
                store, queue = self._open(db)
                procs = self._procs(db, 1, burst=False)
                try:
                    out = []
                    for _ in range(self.fanout_rounds):
                        job_id = queue.enqueue("bench.fanout", {"width": self.fanout_width})
                        queue.result(job_id, timeout=600)
                        job = queue.get_job(job_id)
                        out.append((job.completed_at - job.created_at).total_seconds())
                    return out
                finally:
                    self._stop(procs)
                    store.close()

        d, r = self._samples("fan-out round trip", mine,
                             lambda: raw.fanout_roundtrip(self.fanout_width, self.fanout_rounds))
        self._row(
            f"{FANOUT} ({self.fanout_width} sub-jobs)", "ms",
            median(d) * 1000 if d else None, median(r) * 1000 if r else None, higher=False,
            note="enqueue -> parent completed, median, 1 worker process; raw: one connection", samples=len(d),
        )

    def run(self) -> None:
        with throwaway(self.url, prefix="djobs_bench_raw") as rawdb:
            raw: Raw
            if rawdb.backend == "postgres":
                assert rawdb.dsn is not None and rawdb.schema is not None
                raw = RawPostgres(rawdb.dsn, rawdb.schema)
            else:
                raw = RawSqlite(os.path.join(rawdb.directory or ".", "raw.db"))
            raw.setup()
            self.enqueue_single(raw)
            self.enqueue_batch(raw)
            for p in self.workers:
                self.end_to_end(raw, p)
            self.latency(raw)
            self.durable_steps(raw)
            self.fanout(raw)


STEPS_PER_TARGET = 5  # measures besides the end-to-end ones


def run(
    targets: Sequence[str | None] = (None,),
    *,
    jobs: int = 10_000,
    workers: Sequence[int] = (1, 2),
    enqueue_jobs: int | None = None,
    latency_samples: int = 100,
    latency_gap: float = 0.05,
    workflows: int = 300,
    steps: int = 10,
    fanout_width: int = 100,
    fanout_rounds: int = 3,
    concurrency: int = 10,
    repeat: int = 1,
    progress: Progress | None = None,
) -> BenchReport:
    """Measure djobs and the raw-SQL baselines on each target (a database URL; None: a temp SQLite file)."""
    if jobs < 1 or not workers or min(workers) < 1 or repeat < 1:
        raise ValueError("bench needs jobs >= 1, repeat >= 1 and at least one worker process")
    workers = sorted(set(workers))
    per_target = repeat * (2 * STEPS_PER_TARGET + 3 * len(workers))
    total = per_target * len(targets)
    done = 0

    def tick(message: str) -> None:
        nonlocal done
        if progress is not None:
            progress(message, min(1.0, done / total))
        done += 1

    params = {
        "targets": ["sqlite (temp file)" if t is None else ("postgres" if is_postgres(t) else t) for t in targets],
        "jobs": jobs, "workers": list(workers), "enqueue_jobs": enqueue_jobs or min(jobs, 2000),
        "latency_samples": latency_samples, "latency_gap_s": latency_gap, "workflows": workflows, "steps": steps,
        "fanout_width": fanout_width, "fanout_rounds": fanout_rounds, "concurrency": concurrency,
        "repeat": repeat,
    }
    env = environment()
    rows: list[BenchRow] = []
    errors: list[str] = []
    for url in targets:
        b = _Bench(url, jobs=jobs, workers=workers, enqueue_jobs=enqueue_jobs or min(jobs, 2000),
                   latency_samples=latency_samples, latency_gap=latency_gap, workflows=workflows, steps=steps,
                   fanout_width=fanout_width, fanout_rounds=fanout_rounds, concurrency=concurrency, repeat=repeat, tick=tick)
        try:
            b.run()
        except Exception as exc:  # e.g. the database is unreachable: report it, keep the other targets
            errors.append(f"{b.backend}: {type(exc).__name__}: {exc}")
        rows.extend(b.rows)
        errors.extend(b.errors)
    if progress is not None:
        progress("done", 1.0)
    report = BenchReport(rows, params, env=env, errors=errors)
    report.env["load_average_at_end"] = round(os.getloadavg()[0], 2)
    for url in targets:
        if is_postgres(url):
            report.env["postgres"] = _server_version(url)
    return report


def _server_version(url: str | None) -> str | None:
    from djobs.proof.dbutil import split_schema
    from djobs.storage.admin import pg_server_version

    try:
        return pg_server_version(split_schema(url or "")[0])
    except Exception:
        return None
