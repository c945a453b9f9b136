"""Durable time and signals under the selftest's chaos: sleeping workflows and signal-waiting workflows,
with signals sent by the harness at random moments while workers are killed.

    register(queue, note)          # the job types, beside the other selftest handlers
    load = Load(run)               # in the orchestrator: seed() from its load loop, signal_loop() on a thread
    verdicts = check(snapshot)     # the invariants below, over what the run recorded

Ledger rows (see `djobs.proof.ledger`):
  woke      job, until             a sleeper's sleep returned (`ts` is when; `until` its checkpointed time)

Invariants: no signal is lost or delivered twice and each job receives its signals in the order they were
sent (a waiter returns the payloads it received; each payload is a token sent once); a signal wait with a
timeout and no signal times out; no sleeper wakes before its checkpointed time; every such job finishes
(the terminal check of `djobs.proof.invariants`).
"""

from __future__ import annotations

import random
import threading
from collections import defaultdict
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from djobs.proof.invariants import Snapshot, Verdict, _verdict

if TYPE_CHECKING:
    from djobs.selftest import _Run

TYPES = ("selftest.sleeper", "selftest.waiter")
SIGNALS_PER_WAITER = 3
#: The database clock (SQLite's julianday is millisecond-grained) against a worker's `time.time()`.
CLOCK_TOLERANCE = 0.005


def register(queue: Any, note: Callable[..., None]) -> None:
    import djobs

    def sleeper(ctx: djobs.Context, args: dict[str, Any]) -> str:
        ctx.sleep(float(args["seconds"]))
        note("woke", job=ctx.job_id)
        return "slept"

    def waiter(ctx: djobs.Context, args: dict[str, Any]) -> dict[str, Any]:
        try:
            ctx.wait_for_signal("never", timeout=float(args["timeout"]))
            timed_out = False
        except djobs.SignalTimeout:
            timed_out = True
        got = [ctx.wait_for_signal("token") for _ in range(int(args["n"]))]
        return {"got": got, "timed_out": timed_out}

    queue.register("selftest.sleeper", sleeper, retries=10)
    queue.register("selftest.waiter", waiter, retries=10)


class Load:
    """The orchestrator's side: seeds sleepers and waiters, and sends each waiter its tokens at random
    moments (some before it waits, most while it waits, many while a worker is dead)."""

    def __init__(self, run: _Run) -> None:
        self.run = run
        self.rng = random.Random(run.seed + 10)
        self.lock = threading.Lock()
        self.sent: dict[str, list[str]] = {}

    def seed(self, n: int) -> None:
        """Called from the load loop: a sleeper and a waiter every few ticks."""
        if n % 15:
            return
        self.run._seed("sleeper", "selftest.sleeper", {"seconds": self.rng.uniform(0.2, 3.0)})
        job_id = self.run._seed("waiter", "selftest.waiter", {"n": SIGNALS_PER_WAITER, "timeout": 0.5})
        with self.lock:
            self.sent[job_id] = []

    def signal_loop(self) -> None:
        """Until the load stops and every waiter has all its tokens: one token to a random waiter."""
        run = self.run
        while True:
            with self.lock:
                owed = [j for j, tokens in self.sent.items() if len(tokens) < SIGNALS_PER_WAITER]
            if not owed:
                if run.stop.is_set() or run._elapsed() >= run.load_window:
                    return
                run.stop.wait(0.05)
                continue
            job_id = self.rng.choice(owed)
            with self.lock:
                token = f"{job_id}:{len(self.sent[job_id])}"
                self.sent[job_id].append(token)
            try:
                run._retrying(lambda j=job_id, t=token: run.queue.signal(j, "token", t), "signal")  # type: ignore[misc]
            except ValueError as exc:  # the waiter finished (failed) before all its signals: a finding
                run._finding(f"signal to waiter {job_id} refused: {exc}")
                with self.lock:
                    self.sent[job_id] = [*self.sent[job_id], *["(refused)"] * SIGNALS_PER_WAITER]
                continue
            run.stats["signals_sent"] += 1
            run.stop.wait(self.rng.uniform(0.0, 0.15))

    def sent_copy(self) -> dict[str, list[str]]:
        with self.lock:
            return {j: list(t) for j, t in self.sent.items()}


def check_signals(s: Snapshot) -> Verdict:
    by_id = {j.id: j for j in s.jobs}
    bad: list[str] = []
    for job_id, sent in s.signals.items():
        job = by_id.get(job_id)
        if job is None or job.status != "completed":
            continue  # lost or unfinished: the terminal check names it
        result = job.result if isinstance(job.result, dict) else {}
        got = result.get("got")
        if got != sent:
            lost = [t for t in sent if t not in (got or [])]
            twice = sorted({t for t in got or [] if (got or []).count(t) > 1})
            what = f"lost {lost}" if lost else f"delivered twice {twice}" if twice else "out of order"
            bad.append(f"waiter {job_id}: {what} (sent {sent}, received {got})")
        if result.get("timed_out") is not True:
            bad.append(f"waiter {job_id}: its wait for a signal never sent did not time out")
    return _verdict(
        "signals: none lost, none delivered twice, in order; timeouts fire", len(s.signals),
        f"{len(s.signals)} signal-waiting workflows, {sum(len(t) for t in s.signals.values())} signals", bad,
    )  # fmt: skip


def check_sleeps(s: Snapshot) -> Verdict:
    woke: dict[str, list[float]] = defaultdict(list)
    for row in s.ledger:
        if row["kind"] == "woke":
            woke[row["job"]].append(float(row["ts"]))
    bad: list[str] = []
    checked = 0
    for job in s.jobs:
        if s.seeded.get(job.id) != "sleeper":
            continue
        checked += 1
        until = next((v.get("until") for _, name, v in s.checkpoints.get(job.id, []) if name == "sleep"), None)
        if job.status == "completed" and (until is None or not woke.get(job.id)):
            bad.append(f"sleeper {job.id} completed without its sleep checkpoint or its wake-up")
            continue
        if until is None:
            continue
        early = [t for t in woke.get(job.id, []) if t < float(until) - CLOCK_TOLERANCE]
        if early:
            bad.append(f"sleeper {job.id} woke {float(until) - min(early):.3f}s before its time")
    return _verdict("sleepers: none woke before its time", checked, f"{checked} sleeping workflows", bad)


def check(s: Snapshot) -> list[Verdict]:
    return [check_signals(s), check_sleeps(s)]
