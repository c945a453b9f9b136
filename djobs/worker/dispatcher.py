"""The dispatcher: one transaction per round writes finished jobs' outcomes and claims into free slots.

All hot-path writes come from this one thread and one connection, batched: a round writes every outcome
gathered since the last one (completions in one statement) and claims for the free slots, plus a prefetch
while the queue's jobs are short (under 20 ms on average), so short jobs never wait for a round trip and
slow ones are never hoarded by one worker. A short linger lets outcomes gather so one commit covers many.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from djobs.errors import StorageRefused, StorageUnavailable
from djobs.event_types import JobCompleted, JobFailed, JobRetrying
from djobs.jobs import JobStatus, decide, from_epoch
from djobs.outcomes import ClaimRequest, OutcomeKind, RoundResult
from djobs.worker.classify import Ended, unrecorded

if TYPE_CHECKING:
    from djobs.worker.executor import Executor, Running
    from djobs.worker.worker import Worker

log = logging.getLogger("djobs.worker")

FLUSH_BATCH = 512
#: Prefetch only while a queue's jobs take less than this on average.
SHORT_JOB_MS = 20.0


class Dispatcher:
    def __init__(self, worker: Worker, executor: Executor) -> None:
        self.w = worker
        self.storage = worker.storage
        self.ex = executor
        self.outcomes: deque[Ended] = deque()
        self.retry_outcomes: list[Ended] = []
        self.in_cycle = False
        self.rounds = 0
        #: From the last round, if it found nothing claimable: when the earliest job of our queues is due.
        self.next_due: float | None = None
        #: The last round had room to claim into (a free slot or prefetch place). With none, nothing another
        #: process commits can change what this worker does until one of its own jobs ends (which wakes it).
        self.had_room = True

    def ended(self, e: Ended) -> None:
        """From a slot or the loop thread: queue an ending for the next round, wake the dispatcher."""
        self.outcomes.append(e)
        self.w.wake()

    @property
    def busy(self) -> bool:
        return bool(self.outcomes or self.retry_outcomes or self.in_cycle)

    def linger(self, linger: float) -> None:
        """Let finished jobs gather for a moment (at most `linger`) so one transaction writes many: a round
        trip and a commit cost far more than a millisecond of a handler thread's idle slot."""
        if linger <= 0 or not self.outcomes:
            return
        deadline = time.monotonic() + linger
        # Each ending wakes the worker: wait for those wake-ups rather than polling (a polling loop here took
        # the GIL from the handler threads thousands of times a second).
        while len(self.outcomes) * 2 < len(self.ex.running):
            left = deadline - time.monotonic()
            if left <= 0:
                return
            self.w.wait_woken(left, lambda: len(self.outcomes) * 2 >= len(self.ex.running))

    def release_ready(self) -> None:
        for entry in self.ex.take_ready():
            e = Ended(None, "released")
            e.outcome = _release(entry)
            e.entry = entry
            e.accounted = True
            self.outcomes.append(e)

    def _prefetch(self, name: str) -> int:
        if self.w.prefetch is not None:
            return self.w.prefetch
        avg = self.ex.avg_ms.get(name)
        return 4 * self.w.queues.get(name, 0) if avg is not None and avg < SHORT_JOB_MS else 0

    def _claims(self) -> tuple[list[ClaimRequest], list[bool]]:
        claims: list[ClaimRequest] = []
        prefetch: list[bool] = []
        types = tuple(self.w.types)
        for name, conc in self.w.queues.items():
            waiting = len(self.ex.ready.get(name, ()))
            busy = self.ex.executing.get(name, 0)
            free = max(0, conc - busy - waiting)
            extra = conc + self._prefetch(name) - busy - waiting - free
            # A claim for a free slot counts its attempt at once (a job that kills its worker the moment it
            # starts must still run out of attempts); a prefetched claim is held until its start is
            # recorded, so a worker lost before then gives the attempt back (see the rescuer).
            limited = name in self.w.limited_queues
            if free > 0:
                claims.append(ClaimRequest(name, types, free, False, limited))
                prefetch.append(False)
            if extra > 0 and not limited:  # a limited queue's places are not hoarded in a prefetch
                claims.append(ClaimRequest(name, types, extra, True))
                prefetch.append(True)
        return claims, prefetch

    def cycle(self, claim: bool) -> tuple[bool, int]:
        self.in_cycle = True
        self.rounds += 1
        try:
            return self._cycle(claim)
        finally:
            self.in_cycle = False

    def _cycle(self, claim: bool) -> tuple[bool, int]:
        """One round: write finished jobs' outcomes, claim into free slots (plus the prefetch). Finished
        handlers give their slot back before the round trip, so ready jobs start at once. Returns (wrote
        anything, number claimed)."""
        batch = self.retry_outcomes
        self.retry_outcomes = []
        while self.outcomes and len(batch) < FLUSH_BATCH:
            batch.append(self.outcomes.popleft())
        for e in batch:
            self._account(e)
        blocked = self.w.is_paused or self.w.stopping
        self.ex.blocked = blocked
        if blocked:
            self.release_ready()
            while self.outcomes and len(batch) < FLUSH_BATCH:
                batch.append(self.outcomes.popleft())
        else:
            self.ex.launch_ready()
        claims: list[ClaimRequest] = []
        prefetch: list[bool] = []
        if claim and not blocked and self.w.types:
            claims, prefetch = self._claims()
        self.had_room = bool(claims)
        started: list[tuple[str, int, float]] = []
        while self.ex.started_held:
            started.append(self.ex.started_held.popleft())
        if not batch and not claims and not started:
            return False, 0
        writes = [e for e in batch if e.outcome is not None]
        outcomes = [e.outcome for e in writes]
        if not self.w.persist_events:
            outcomes = [dataclasses.replace(o, event=None) for o in outcomes]  # type: ignore[type-var]
        limited_done = bool(self.w.limited_queues) and any((o.queue or "") in self.w.limited_queues for o in outcomes if o)

        def attempt() -> RoundResult:
            try:
                return self.storage.cycle(
                    self.w.id, outcomes, claims, (), started, self.w.persist_events, self.storage.is_pg,  # type: ignore[arg-type]
                    self.rounds, limited_done,
                )
            except StorageUnavailable:
                # The commit may have reached the database although we saw an error (claims we never got):
                # reconcile once things settle, even if a retry of this round succeeds.
                self.w.reconcile_needed = True
                raise

        try:
            result: RoundResult = self.storage.run(
                attempt, self.w.storage_retry if batch else self.w.dequeue_retry, "write outcomes and claim"
            )
        except StorageUnavailable as exc:
            if not isinstance(exc, StorageRefused) or not writes:
                return self._kept(batch, started, exc)
            # Refused for what it holds, the same round would be refused forever: write its outcomes one by
            # one instead (no claims this time), so one outcome the database will not store cannot hold up the
            # others, nor this worker's next rounds.
            log.error("worker %s: the database refused a round (%s); writing its %d outcome(s) one by one",
                      self.w.id, exc, len(writes))  # fmt: skip
            self.ex.started_held.extendleft(reversed(started))
            try:
                result = self._one_by_one(writes)
            except StorageUnavailable as again:
                return self._kept(batch, [], again)
        owned = dict(zip((id(e) for e in writes), result.owned, strict=True))
        fanouts: set[str] = set()
        announced: list[Ended] = []
        for e in batch:
            entry = self.ex.running.pop(e.entry.key, None) if e.entry is not None else None
            if entry is None or not owned.get(id(e), False):
                continue  # never launched, or someone else owns the job now: drop silently
            if e.outcome is not None and e.outcome.kind in (OutcomeKind.COMPLETE, OutcomeKind.FAIL) and entry.fanout_id:
                fanouts.add(entry.fanout_id)
            announced.append(e)
        fanouts.update(f for _, f in result.failed if f)
        won = result.claims
        self.next_due = result.next_due
        # Claims for free slots go to the front of their line, to start now; prefetched ones queue behind.
        # (A stored run_at out of range reads as None: it must sort, not crash the round.)
        won_sorted = sorted(won, key=lambda c: (-c.job.priority, c.job.run_at.timestamp() if c.job.run_at else 0.0, c.job.id))
        for c in reversed([c for c in won_sorted if not prefetch[c.request]]):
            self.ex.accept(c, held=False, front=True)
        for c in [c for c in won_sorted if prefetch[c.request]]:
            self.ex.accept(c, held=True)
        self.ex.launch_ready()
        for e in announced:
            self.w.announce(e)
        if fanouts:
            self.decide(fanouts)
        return bool(batch) or bool(started), len(won)

    def _kept(self, batch: list[Ended], started: list[tuple[str, int, float]], exc: StorageUnavailable) -> tuple[bool, int]:
        log.warning("worker %s: database unavailable (%s); %d outcome(s) kept for retry", self.w.id, exc, len(batch))
        self.retry_outcomes = batch
        self.ex.started_held.extendleft(reversed(started))
        self.w.pause_for(min(5.0, max(self.w.poll_interval, 1.0)))
        return False, 0

    def _one_by_one(self, writes: list[Ended]) -> RoundResult:
        """Each outcome in a round of its own; one the database refuses even alone becomes a failure that
        names why (`classify.unrecorded`), which is written instead."""
        owned: list[bool] = []
        failed: list[tuple[str, str | None]] = []
        for e in writes:
            for last in (False, True):
                o = e.outcome
                assert o is not None
                if not self.w.persist_events:
                    o = dataclasses.replace(o, event=None)
                try:
                    r = self.storage.cycle(self.w.id, [o], [], (), (), self.w.persist_events, False, self.rounds, False)
                    break
                except StorageRefused as exc:
                    if last:
                        raise
                    log.error("worker %s: job %s: the database refused its outcome (%s)", self.w.id, o.job_id, exc)
                    unrecorded(e, str(exc))
            owned += r.owned
            failed += r.failed
        return RoundResult(owned, [], failed)

    def _account(self, e: Ended) -> None:
        if e.accounted or e.entry is None:
            return
        e.accounted = True
        entry = self.ex.running.get(e.entry.key)
        if entry is e.entry:
            took = (e.finished - entry.started) * 1000
            prev = self.ex.avg_ms.get(entry.job.queue)
            self.ex.avg_ms[entry.job.queue] = took if prev is None else prev * 0.8 + took * 0.2

    def decide(self, fanouts: set[str]) -> None:
        for fid in sorted(fanouts):
            try:
                self.storage.run(functools.partial(self.storage.evaluate_fanout, fid, decide), self.w.storage_retry, "fan-out")
            except StorageUnavailable as exc:  # the deadline service's backstop decides it later
                log.warning("fan-out %s: %s", fid, exc)

    def flush(self) -> bool:
        return self.cycle(claim=False)[0]


def _release(entry: Running) -> Any:
    from djobs.outcomes import Outcome

    return Outcome(OutcomeKind.RELEASE, entry.job.id, entry.job.attempt, queue=entry.job.queue)


def announce_events(w: Worker, e: Ended, publish: Callable[[Any], None], hook: Callable[..., None]) -> None:
    """In-process events and hooks for an outcome that was written (never for a dropped one)."""
    o = e.outcome
    job = e.entry.job
    if o is None:
        return
    if o.kind is OutcomeKind.COMPLETE:
        snap = dataclasses.replace(job, status=JobStatus.COMPLETED, result=e.value)
        publish(JobCompleted(job_id=job.id, job=snap))
        hook("complete", snap, e.value)
    elif o.kind is OutcomeKind.FAIL:
        snap = dataclasses.replace(job, status=JobStatus.FAILED, last_error=o.error)
        publish(JobFailed(job_id=job.id, job=snap, error=o.error or ""))
        hook("fail", snap, e.exc)
    elif o.kind is OutcomeKind.RETRY:
        snap = dataclasses.replace(job, status=JobStatus.RETRYING, last_error=o.error)
        nxt = from_epoch(time.time() + o.delay)
        publish(JobRetrying(job_id=job.id, job=snap, error=o.error or "", attempt=job.attempt, next_run_at=nxt))
        hook("retry", snap, job.attempt, e.exc)
