"""`djobs selftest`: prove the delivery guarantees on this machine and database, under kill -9.

    report = djobs.selftest.run("postgresql://localhost/app", duration=60, workers=3, kills=20, chaos=True)
    report.ok                  # True only if every invariant held
    for v in report.verdicts: print(v.name, v.ok, v.detail)
    print(report.to_json())

What a run does:
1. Makes a throwaway database: a fresh schema on PostgreSQL, a temp SQLite file otherwise (`url=None`).
   The user's own jobs are never read or written.
2. Starts `workers` real worker processes (`python -m djobs.proof.worker`), each running the scheduler,
   with a short stale-lock age so a killed worker's jobs come back within seconds.
3. Seeds a mixed load for most of `duration`: plain jobs, slow jobs, 5-step durable workflows, fan-outs
   of width 10 under each strategy (succeeding and failing), always-failing jobs with retries, a storm of
   enqueues on three unique keys, a 1-second `every` schedule, durable sleepers, signal waiters whose
   signals the run sends at random moments (`djobs.proof.durable_time`), and plain jobs on two queues with
   fleet-wide running caps, one for the queue and one per key (`djobs.proof.limits`), sampled throughout.
4. With `chaos`, sends SIGKILL to a random worker `kills` times at random moments (restarting it), and
   SIGTERM once (a graceful stop, then a restart); and mixes in misbehaving handlers (`proof/misbehave.py`:
   hangs past their time limit, database errors, unstorable results, impossible retry delays). With `db_restart` on PostgreSQL, restarts the server
   once mid-load (`pg_ctlcluster ... restart`).
5. Stops seeding, pauses the schedule, waits for every job to finish, stops the workers gracefully, then
   checks the invariants of `djobs.proof.invariants` over the database and the handlers' side-effect
   ledger.
"""

from __future__ import annotations

import functools
import logging
import os
import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from djobs.proof import durable_time, invariants, limits, misbehave
from djobs.proof.dbutil import Throwaway, redact, restart_postgres, throwaway
from djobs.proof.invariants import FanoutCase, Interruption, JobRow, Snapshot
from djobs.proof.ledger import read_ledger
from djobs.proof.limits import KEYED_QUEUE, LIMITED_QUEUE, RUNNING_CAP, RunningSampler
from djobs.proof.procs import WorkerProcess, terminate_all
from djobs.proof.report import SelftestReport

log = logging.getLogger("djobs.selftest")

Progress = Callable[[str, float], None]

SCHEDULE_NAME = "selftest-tick"
UNIQUE_KEYS = ("selftest-a", "selftest-b", "selftest-c")
FANOUT_CASES = (
    FanoutCase("fail_fast", 10, ()),
    FanoutCase("fail_fast", 10, (3,)),
    FanoutCase("collect_all", 10, (1, 6)),
    FanoutCase("threshold", 10, (2,)),  # 9 of 10 succeed >= ceil(0.8 * 10): completes
    FanoutCase("threshold", 10, (0, 4, 7)),  # 7 of 10: fails
)
NON_TERMINAL = ("pending", "running", "waiting", "retrying", "paused")
STOP_TIMEOUT = 45.0  # a worker drains for at most 30 s by default, then exits


def _epoch(dt: Any) -> float | None:
    return None if dt is None else float(dt.timestamp())


def job_row(job: Any) -> JobRow:
    return JobRow(
        id=job.id,
        type=job.type,
        status=str(getattr(job.status, "value", job.status)),
        attempt=job.attempt,
        max_retries=job.max_retries,
        created_at=_epoch(job.created_at) or 0.0,
        completed_at=_epoch(job.completed_at),
        updated_at=_epoch(job.updated_at),
        run_at=_epoch(job.run_at),
        parent_id=job.parent_id,
        unique_key=job.unique_key,
        result=job.result,
        last_error=job.last_error,
        locked_by=getattr(job, "locked_by", None),
    )


class _Run:
    def __init__(self, db: Throwaway, *, duration: float, workers: int, kills: int, chaos: bool,
                 db_restart: bool, seed: int, concurrency: int, stale_age: float, settle_timeout: float,
                 progress: Progress | None) -> None:
        import djobs
        from djobs.proof import handlers

        self.db = db
        self.duration = duration
        self.load_window = max(2.0, duration * 0.7)
        self.kills = kills if chaos else 0
        self.chaos = chaos
        self.db_restart = db_restart
        # One generator per thread, each derived from the seed, so a seed replays the same choices.
        self.rng = random.Random(seed)  # the load
        self.chaos_rng = random.Random(seed + 1)  # when and whom to kill
        self.seed = seed
        self.settle_timeout = settle_timeout
        self.progress = progress or (lambda _msg, _frac: None)
        self.store = djobs.connect(db.url)
        self.queue = djobs.Queue(self.store)
        handlers.register_selftest(self.queue, None)
        self.ledger_dir = os.path.join(db.directory or ".", "ledger")
        os.makedirs(self.ledger_dir, exist_ok=True)
        args = [db.url, "--role", "selftest", "--ledger", self.ledger_dir, "--concurrency", str(concurrency),
                "--queue", f"default,{LIMITED_QUEUE},{KEYED_QUEUE}",
                "--stale-age", str(stale_age), "--heartbeat", str(max(0.2, stale_age / 6))]
        log_dir = os.path.join(db.directory or ".", "logs")
        self.procs = [WorkerProcess(args, log_dir, slot=i) for i in range(workers)]
        self.slot_lock = threading.Lock()
        self.stopping: set[int] = set()
        self.lock = threading.Lock()
        self.interruptions: list[Interruption] = []
        self.restarts: list[float] = []
        self.seeded: dict[str, str] = {}
        self.fanouts: dict[str, FanoutCase] = {}
        self.stats: Counter[str] = Counter()
        self.errors: list[str] = []
        self.stop = threading.Event()
        self.sampler = RunningSampler(self.queue, self.stop)
        self.t0 = 0.0
        self.timed = durable_time.Load(self)  # sleepers and signal waiters
        self.slot_watch = misbehave.SlotWatch(self.queue)

    # -- helpers -----------------------------------------------------------------------------------------
    def _retrying(self, fn: Callable[[], Any], what: str) -> Any:
        """Run a client call, retrying while the database is unreachable (e.g. during --db-restart)."""
        import djobs

        deadline = time.monotonic() + 60
        delay = 0.1
        while True:
            try:
                return fn()
            except djobs.StorageUnavailable as exc:
                if time.monotonic() > deadline:
                    raise
                self.stats["client_retries"] += 1
                log.info("selftest: %s failed (%s); retrying", what, exc)
                time.sleep(delay)
                delay = min(2.0, delay * 2)

    def _seed(self, kind: str, job_type: str, args: Any, **options: Any) -> str:
        job_id: str = self._retrying(lambda: self.queue.enqueue(job_type, args, **options), f"enqueue {kind}")
        with self.lock:
            self.seeded[job_id] = kind
        return job_id

    def _seed_many(self, kind: str, subs: list[Any]) -> None:
        ids = self._retrying(lambda: self.queue.enqueue_many(subs), f"enqueue {kind}")
        with self.lock:
            for job_id in ids:
                self.seeded[job_id] = kind

    def _elapsed(self) -> float:
        return time.monotonic() - self.t0

    def _sleep_until(self, t: float) -> bool:
        """Sleep until `t` seconds into the run; False if the run is stopping."""
        return not self.stop.wait(max(0.0, t - self._elapsed()))

    # -- load --------------------------------------------------------------------------------------------
    def seed_fanouts(self) -> None:
        for case in FANOUT_CASES:
            args = {"strategy": case.strategy, "width": case.width, "failing": list(case.failing),
                    "threshold": case.threshold, "sleep": 0.05}
            job_id = self._seed("fanout", "selftest.fanout", args)
            with self.lock:
                self.fanouts[job_id] = case

    def seed_load(self) -> None:
        import djobs

        self.seed_fanouts()
        second_fanouts: float | None = self.load_window / 2
        n = 0
        tick = 0.25
        while self._elapsed() < self.load_window and not self.stop.is_set():
            subs = [djobs.Sub("selftest.plain", {"n": n + k, "sleep": self.rng.uniform(0, 0.02)}) for k in range(5)]
            # More jobs of the limited queue due than its running cap lets run at once.
            subs += [djobs.Sub("selftest.plain", {"n": n + k, "sleep": self.rng.uniform(0.05, 0.3)}, queue=LIMITED_QUEUE)
                     for k in range(5, 7)]  # fmt: skip
            self._seed_many("plain", subs)
            for k in range(7, 9):  # and of the keyed queue's keys more than each key's cap
                args = {"n": n + k, "sleep": self.rng.uniform(0.05, 0.3)}
                self._seed("plain", "selftest.plain", args, queue=KEYED_QUEUE, key=self.rng.choice(limits.KEYS))
            if n % 10 == 0:  # twice a second
                self._seed("workflow", "selftest.workflow", {"steps": 5, "sleep": self.rng.uniform(0.05, 0.3)})
            self.timed.seed(n)
            if n % 40 == 0:
                self._seed("slow", "selftest.slow", {"n": n, "sleep": self.rng.uniform(1.0, 2.5)})
                self._seed("fail", "selftest.fail", {}, retries=2)
            if self.chaos and n % 20 == 0:
                misbehave.seed(self._seed, n // 20)
            if second_fanouts is not None and self._elapsed() >= second_fanouts:
                self.seed_fanouts()
                second_fanouts = None
            n += 5
            self.progress("load", min(1.0, self._elapsed() / self.duration) * 0.8)
            if not self._sleep_until(self._elapsed() + tick):
                break

    def unique_storm(self, index: int) -> None:
        import djobs

        rng = random.Random(self.seed + 2 + index)
        while self._elapsed() < self.load_window and not self.stop.is_set():
            key = rng.choice(UNIQUE_KEYS)
            try:
                self._seed("unique", "selftest.unique", {"key": key, "sleep": 0.3}, unique=key)
                self.stats["unique_enqueued"] += 1
            except djobs.DuplicateJob:
                self.stats["unique_duplicates"] += 1
            except Exception as exc:  # the contract is a job id or DuplicateJob: anything else is a finding
                self._finding(f"enqueue with a unique key raised {type(exc).__name__} (not DuplicateJob): "
                              f"{(str(exc).strip().splitlines() or [''])[0]}")
            self.stop.wait(rng.uniform(0.01, 0.04))

    def _finding(self, message: str) -> None:
        with self.lock:
            if message not in self.errors:
                self.errors.append(message)

    # -- chaos -------------------------------------------------------------------------------------------
    def _record(self, event: Interruption | None) -> None:
        if event is not None:
            with self.lock:
                self.interruptions.append(event)
            self.stats["kills" if event.kind == "kill" else "graceful_stops"] += 1

    def kill_one(self) -> None:
        with self.slot_lock:
            alive = [p for p in self.procs if p.alive() and p.slot not in self.stopping]
            if not alive:
                return
            proc = self.chaos_rng.choice(alive)
            self._record(proc.kill())
        time.sleep(self.chaos_rng.uniform(0.0, 0.5))
        with self.slot_lock:
            if not proc.alive():
                proc.start()
                self.stats["restarts"] += 1

    def graceful_stop_one(self) -> None:
        with self.slot_lock:
            alive = [p for p in self.procs if p.alive() and p.slot not in self.stopping]
            if not alive:
                return
            proc = self.chaos_rng.choice(alive)
            self.stopping.add(proc.slot)
        try:
            self._record(proc.terminate(timeout=STOP_TIMEOUT))
            if proc.forced:
                self._finding(f"worker process {proc.pid} did not stop within {STOP_TIMEOUT:.0f}s of SIGTERM")
        finally:
            with self.slot_lock:
                self.stopping.discard(proc.slot)
                proc.start()
                self.stats["restarts"] += 1

    def restart_database(self) -> None:
        if self.db.backend != "postgres":
            self.errors.append("--db-restart needs PostgreSQL; skipped on SQLite")
            return
        ts = time.time()
        try:
            restart_postgres()
        except Exception as exc:
            self.errors.append(f"database restart failed: {exc}")
            return
        self.restarts.append(ts)
        self.stats["db_restarts"] += 1

    def chaos_plan(self) -> list[tuple[float, Callable[[], None]]]:
        d = self.duration
        plan: list[tuple[float, Callable[[], None]]] = [
            (self.chaos_rng.uniform(0.1 * d, 0.9 * d), self.kill_one) for _ in range(self.kills)
        ]
        if self.chaos:
            plan.append((self.chaos_rng.uniform(0.3 * d, 0.7 * d), self.graceful_stop_one))
        if self.db_restart:
            plan.append((0.45 * d, self.restart_database))
        plan.sort(key=lambda e: e[0])
        return plan

    def run_chaos(self, plan: list[tuple[float, Callable[[], None]]]) -> None:
        for at, action in plan:
            if not self._sleep_until(at):
                return
            if action == self.graceful_stop_one:
                threading.Thread(target=action, name="selftest-term", daemon=True).start()
            else:
                action()

    def watch_crashes(self) -> None:
        """A worker that exits on its own (not by our signals) is a finding: note it and restart it."""
        with self.slot_lock:
            for p in self.procs:
                if p.slot not in self.stopping and p.crashed():
                    self.errors.append(f"worker process {p.pid} exited by itself:\n{p.log_tail()}")
                    p.start()
                    self.stats["restarts"] += 1

    # -- settle and collect ------------------------------------------------------------------------------
    def unfinished(self) -> int:
        stats = self._retrying(self.queue.queue_stats, "queue_stats")
        return sum(s.counts.get(st, 0) for s in stats for st in NON_TERMINAL)

    def settle(self) -> float:
        t = time.monotonic()
        deadline = t + self.settle_timeout
        left = -1
        while time.monotonic() < deadline:
            self.watch_crashes()
            left = self.unfinished()
            if left == 0:
                return time.monotonic() - t
            frac = 0.8 + 0.15 * (time.monotonic() - t) / self.settle_timeout
            self.progress(f"waiting for {left} unfinished jobs", frac)
            time.sleep(0.25)
        self.errors.append(f"{left} jobs still unfinished after {self.settle_timeout:.0f}s")
        return time.monotonic() - t

    def collect(self) -> Snapshot:
        collected_at = time.time()
        jobs: list[JobRow] = []
        offset = 0
        while True:
            page: list[Any] = self._retrying(
                functools.partial(self.queue.list_jobs, limit=1000, offset=offset), "list_jobs"
            )
            jobs.extend(job_row(j) for j in page)
            if len(page) < 1000:
                break
            offset += len(page)
        checkpoints = {}
        for j in jobs:
            if self.seeded.get(j.id) in ("workflow", "sleeper"):
                cps: list[Any] = self._retrying(functools.partial(self.queue.checkpoints, j.id), "checkpoints")
                checkpoints[j.id] = [(c.call_index, c.name, c.value) for c in cps]
        return Snapshot(
            jobs=jobs,
            checkpoints=checkpoints,
            ledger=read_ledger(self.ledger_dir),
            interruptions=list(self.interruptions),
            seeded=dict(self.seeded),
            fanouts=dict(self.fanouts),
            restarts=list(self.restarts),
            collected_at=collected_at,
            running_cap=RUNNING_CAP,
            running_samples=list(self.sampler.samples),
            key_cap=limits.KEY_CAP,
            key_samples=list(self.sampler.key_samples),
            signals=self.timed.sent_copy(),
            slot_samples=list(self.slot_watch.samples),
        )

    # -- the run -----------------------------------------------------------------------------------------
    def execute(self) -> SelftestReport:
        import djobs

        self.progress("starting workers", 0.0)
        self.queue.set_limits(LIMITED_QUEUE, running=RUNNING_CAP)
        self.queue.set_limits(KEYED_QUEUE, key_running=limits.KEY_CAP, key_rate=limits.KEY_RATE)
        for p in self.procs:
            p.start()
        try:
            for p in self.procs:
                p.wait_ready(60)
            self.t0 = time.monotonic()
            self.queue.schedule("selftest.tick", djobs.every(timedelta(seconds=1)), name=SCHEDULE_NAME)
            threads = [threading.Thread(target=self.unique_storm, args=(i,), name="selftest-unique", daemon=True)
                       for i in range(3)]
            threads.append(threading.Thread(target=self.timed.signal_loop, name="selftest-signals", daemon=True))
            chaos = threading.Thread(target=self.run_chaos, args=(self.chaos_plan(),), name="selftest-chaos",
                                     daemon=True)
            for t in [*threads, chaos]:
                t.start()
            self.sampler.start()
            self.slot_watch.start()
            self.seed_load()
            for t in threads:
                t.join()
            while chaos.is_alive() and self._elapsed() < self.duration + 120:
                self.watch_crashes()
                self.progress("chaos", min(1.0, self._elapsed() / self.duration) * 0.8)
                chaos.join(0.25)
            while self._elapsed() < self.duration:  # the workers keep serving the load for the whole duration
                self.watch_crashes()
                self.progress("running", min(1.0, self._elapsed() / self.duration) * 0.8)
                time.sleep(0.25)
            self.stop.set()
            self._retrying(lambda: self.queue.pause_schedule(SCHEDULE_NAME), "pause_schedule")
            # Let in-flight terminate/restart finish before waiting on the jobs.
            deadline = time.monotonic() + 90
            while self.stopping and time.monotonic() < deadline:
                time.sleep(0.1)
            settle = self.settle()
        finally:
            self.stop.set()
            self.sampler.join()
            if self.slot_watch.is_alive():
                self.slot_watch.stop()
            self.progress("stopping workers", 0.95)
            for p in terminate_all(self.procs, timeout=STOP_TIMEOUT):
                self._finding(f"worker process {p.pid} did not stop within {STOP_TIMEOUT:.0f}s of SIGTERM "
                              f"(drain timeout 30s):\n{p.log_tail(5)}")
        snapshot = self.collect()
        verdicts = invariants.check(snapshot) + durable_time.check(snapshot)
        kinds = Counter(snapshot.seeded.values())
        stats: dict[str, Any] = {
            "backend": self.db.backend,
            "database": redact(self.db.url),
            "duration_s": round(self._elapsed(), 1),
            "load_s": round(self.load_window, 1),
            "settle_s": round(settle, 1),
            "workers": len(self.procs),
            "chaos": self.chaos,
            "kills": self.stats["kills"],
            "graceful_stops": self.stats["graceful_stops"],
            "worker_restarts": self.stats["restarts"],
            "db_restarts": self.stats["db_restarts"],
            "seeded": dict(sorted(kinds.items())),
            "jobs_total": len(snapshot.jobs),
            "unique_enqueued": self.stats["unique_enqueued"],
            "unique_duplicates_refused": self.stats["unique_duplicates"],
            "signals_sent": self.stats["signals_sent"],
            "client_retries": self.stats["client_retries"],
            "ledger_rows": len(snapshot.ledger),
            "limited_running_peak": max(snapshot.running_samples, default=0),
            "keyed_running_peak": max(snapshot.key_samples, default=0),
            "seed": self.seed,
        }
        self.progress("done", 1.0)
        return SelftestReport(verdicts, stats, snapshot, list(self.errors))

    def close(self) -> None:
        for p in self.procs:
            if p.alive():
                p.kill()
        self.store.close()


def run(
    url: str | None = None,
    *,
    duration: float = 60.0,
    workers: int = 3,
    kills: int = 20,
    chaos: bool = False,
    db_restart: bool = False,
    seed: int | None = None,
    concurrency: int = 4,
    stale_age: float = 3.0,
    settle_timeout: float = 120.0,
    keep: bool = False,
    progress: Progress | None = None,
) -> SelftestReport:
    """Run the selftest against a throwaway database made from `url` (None: a temp SQLite file)."""
    if workers < 1:
        raise ValueError("selftest needs at least one worker")
    if duration <= 0:
        raise ValueError("selftest duration must be positive")
    if seed is None:
        seed = random.SystemRandom().randrange(2**31)
    with throwaway(url, prefix="djobs_selftest", keep=keep) as db:
        r = _Run(db, duration=duration, workers=workers, kills=kills, chaos=chaos, db_restart=db_restart,
                 seed=seed, concurrency=concurrency, stale_age=stale_age, settle_timeout=settle_timeout,
                 progress=progress)
        try:
            report = r.execute()
        finally:
            r.close()
        if keep:
            report.stats["kept"] = db.directory if db.backend == "sqlite" else db.schema
        return report


def recheck(report: SelftestReport) -> SelftestReport:
    """Run the checks again over the report's snapshot (e.g. after a test planted a violation in it)."""
    assert report.snapshot is not None
    verdicts = invariants.check(report.snapshot) + durable_time.check(report.snapshot)
    return SelftestReport(verdicts, report.stats, report.snapshot, report.errors)
