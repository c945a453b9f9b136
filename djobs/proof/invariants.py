"""The selftest's invariants: pure functions over what a run recorded (`Snapshot`), one `Verdict` each.

    verdicts = check(snapshot)          # list[Verdict]; all(v.ok for v in verdicts) means the run proved it

A `Snapshot` is plain data (job rows from the database, checkpoints, the side-effect ledger, the log of
kills and graceful stops, and what the run seeded), so every check can be tested on made-up data: a test
plants a violation and expects the check to catch it.

Ledger rows the selftest handlers write (see `djobs.proof.handlers`):
  plain      job, phase ("start" | "end")      plain and slow jobs
  step       wf, i, token                     one durable step of a workflow (its token is its result)
  wf_done    job, tokens                      a workflow returned these step results
  fail       job, attempt                     an always-failing job ran
  fanout_done job, oks                        a fan-out parent got these per-child outcomes
  child      job, fail                        a fan-out child ran
  misbehave  job, attempt, type               a misbehaving handler ran (`djobs.proof.misbehave`)
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

TERMINAL = frozenset({"completed", "failed", "cancelled"})
# created_at is the database's clock when the INSERT began. SQLite runs it under the write lock, so only
# julianday's millisecond grain separates it from the previous job's completed_at; PostgreSQL reads the clock
# first and may then wait on the unique index for the commit of the job on that key that is finishing at
# that very moment (seen beyond 2 ms on a loaded machine). The handlers' ledger checks runs exactly.
UNIQUE_CLOCK_SLACK = 0.25  # seconds
OUTCOME_GRACE = 2.0  # seconds from a handler's end to its outcome being written


@dataclass(frozen=True)
class JobRow:
    id: str
    type: str
    status: str
    attempt: int = 1
    max_retries: int = 0
    created_at: float = 0.0
    completed_at: float | None = None
    updated_at: float | None = None
    run_at: float | None = None
    parent_id: str | None = None
    unique_key: str | None = None
    result: Any = None
    last_error: str | None = None
    locked_by: str | None = None


@dataclass(frozen=True)
class Interruption:
    """A worker process stopped under load: `kind` is "kill" (SIGKILL) or "term" (graceful SIGTERM)."""

    ts: float
    pid: int
    kind: str = "kill"


@dataclass(frozen=True)
class FanoutCase:
    strategy: str  # "fail_fast" | "collect_all" | "threshold"
    width: int
    failing: tuple[int, ...]
    threshold: float = 0.8


@dataclass
class Snapshot:
    jobs: list[JobRow]
    checkpoints: dict[str, list[tuple[int | None, str, Any]]]  # job id -> (call index, name, value)
    ledger: list[dict[str, Any]]
    interruptions: list[Interruption]
    seeded: dict[str, str]  # job id -> kind: plain, slow, workflow, fail, fanout, unique
    fanouts: dict[str, FanoutCase] = field(default_factory=dict)
    schedule_type: str = "selftest.tick"
    restarts: list[float] = field(default_factory=list)  # database restarts (epoch seconds)
    collected_at: float | None = None  # when the jobs were read (epoch seconds)
    running_cap: int | None = None  # the limited queue's fleet-wide running cap (None: no limited queue)
    running_samples: list[int] = field(default_factory=list)  # its running count, sampled during the run
    key_cap: int | None = None  # the keyed queue's per-key running cap (None: no keyed queue)
    key_samples: list[int] = field(default_factory=list)  # the most jobs of one of its keys running, sampled
    signals: dict[str, list[str]] = field(default_factory=dict)  # waiter job id -> tokens sent, in order
    #: Running jobs with a time limit, sampled during the run: (when, job id, started, worker pid, limit).
    slot_samples: list[tuple[float, str, float, int | None, float]] = field(default_factory=list)


@dataclass(frozen=True)
class Verdict:
    name: str
    ok: bool
    checked: int
    detail: str
    violations: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "ok": self.ok,
            "checked": self.checked,
            "detail": self.detail,
            "violations": list(self.violations),
        }


MAX_SHOWN = 10


def _verdict(name: str, checked: int, detail: str, violations: list[str]) -> Verdict:
    shown = violations[:MAX_SHOWN]
    if len(violations) > MAX_SHOWN:
        shown.append(f"... and {len(violations) - MAX_SHOWN} more")
    if violations:
        detail = f"{len(violations)} violation(s); {detail}"
    return Verdict(name, not violations, checked, detail, tuple(shown))


RESTART_WINDOW = 30.0  # seconds after a database restart began during which connections may fail


def _explained(s: Snapshot, pid: int, start: float, end: float | None) -> bool:
    """Was process `pid` stopped, or the database restarted, between `start` and `end` (None: any time)?"""
    if any(i.pid == pid and i.ts >= start and (end is None or i.ts <= end) for i in s.interruptions):
        return True
    return any(t <= (end if end is not None else math.inf) and t + RESTART_WINDOW >= start for t in s.restarts)


def expected_status(kind: str, job: JobRow, fanouts: dict[str, FanoutCase]) -> str | None:
    if kind in ("plain", "slow", "workflow", "unique", "tick", "sleeper", "waiter"):
        return "completed"
    if kind in ("fail", "misbehave"):
        return "failed"
    if kind == "fanout" and job.id in fanouts:
        case = fanouts[job.id]
        failures = len(case.failing)
        if case.strategy == "fail_fast":
            return "failed" if failures else "completed"
        if case.strategy == "collect_all":
            return "completed"
        need = math.ceil(case.threshold * case.width)
        return "completed" if case.width - failures >= need else "failed"
    return None


def _state(job: JobRow, s: Snapshot) -> str:
    """A wedged job's facts, for whoever has to find out why."""
    parts = [f"attempt {job.attempt} of {job.max_retries + 1}"]
    if job.run_at is not None and s.collected_at is not None:
        parts.append(f"due {job.run_at - s.collected_at:+.1f}s from the check")
    if job.locked_by:
        parts.append(f"locked by {job.locked_by}")
    if job.last_error:
        parts.append(f"last error: {job.last_error[:120]}")
    return "; ".join(parts)


def check_terminal(s: Snapshot) -> Verdict:
    by_id = {j.id: j for j in s.jobs}
    bad: list[str] = []
    for job_id, kind in s.seeded.items():
        job = by_id.get(job_id)
        if job is None:
            bad.append(f"{kind} job {job_id} lost (not in the database)")
            continue
        want = expected_status(kind, job, s.fanouts)
        if job.status not in TERMINAL:
            bad.append(f"{kind} job {job_id} wedged in {job.status} ({_state(job, s)})")
        elif want is not None and job.status != want:
            bad.append(f"{kind} job {job_id} ended {job.status}, expected {want}")
    for job in s.jobs:
        if job.id not in s.seeded and job.status not in TERMINAL:
            bad.append(f"{job.type} job {job.id} wedged in {job.status} ({_state(job, s)})")
    counts: dict[str, int] = defaultdict(int)
    for job in s.jobs:
        counts[job.status] += 1
    summary = ", ".join(f"{n} {st}" for st, n in sorted(counts.items()))
    return _verdict("every job reached a terminal state", len(s.jobs), f"{len(s.jobs)} jobs: {summary}", bad)


def check_steps_exactly_once(s: Snapshot) -> Verdict:
    steps: dict[tuple[str, int], list[dict[str, Any]]] = defaultdict(list)
    for row in s.ledger:
        if row["kind"] == "step":
            steps[(row["wf"], row["i"])].append(row)
    bad: list[str] = []
    checked = reexec = 0
    workflows = [j for j in s.jobs if s.seeded.get(j.id) == "workflow"]
    for job in workflows:
        tokens: dict[int, Any] = {}
        for index, _name, value in s.checkpoints.get(job.id, []):
            if index is None:
                continue
            tokens[index] = value
            rows = steps.get((job.id, index), [])
            checked += 1
            mine = [r for r in rows if r["token"] == value]
            if len(mine) != 1:
                bad.append(f"workflow {job.id} step {index}: checkpointed token seen {len(mine)} times in the ledger")
                continue
            done = mine[0]
            after = [r for r in rows if r["ts"] > done["ts"] and r is not done]
            if after:
                bad.append(
                    f"workflow {job.id} step {index} ran {len(after)} more time(s) after the run whose result "
                    "was checkpointed"
                )
            before = [r for r in rows if r["ts"] < done["ts"]]
            for k, r in enumerate(before):
                nxt = before[k + 1]["ts"] if k + 1 < len(before) else done["ts"]
                if not _explained(s, r["pid"], r["ts"], nxt):
                    bad.append(
                        f"workflow {job.id} step {index} ran again though process {r['pid']} was not stopped"
                    )
            reexec += len(before)
        for wf, index in steps:
            if wf == job.id and index not in tokens and job.status == "completed":
                bad.append(f"workflow {job.id} completed but step {index} ran without a checkpoint")
        done_rows = [r for r in s.ledger if r["kind"] == "wf_done" and r["job"] == job.id]
        want = [tokens[i] for i in sorted(tokens)]
        for r in done_rows:
            if list(r["tokens"]) != want:
                bad.append(f"workflow {job.id} returned step results that differ from its checkpoints")
    return _verdict(
        "completed durable steps ran exactly once",
        checked,
        f"{checked} steps in {len(workflows)} workflows; {reexec} interrupted step run(s) re-ran before their checkpoint",
        bad,
    )


def check_plain_at_least_once(s: Snapshot) -> Verdict:
    starts_of: dict[str, list[dict[str, Any]]] = defaultdict(list)
    ends_of: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in s.ledger:
        if row["kind"] == "plain":
            (starts_of if row["phase"] == "start" else ends_of)[row["job"]].append(row)
    # A run that finished its handler may still lose its outcome to a kill before the worker writes it;
    # past this grace the outcome was due in the database (longer when the database itself restarted).
    grace = 60.0 if s.restarts else OUTCOME_GRACE
    bad: list[str] = []
    plain = [j for j in s.jobs if s.seeded.get(j.id) in ("plain", "slow")]
    reexec = cut = 0
    for job in plain:
        starts, ends = starts_of.get(job.id, []), ends_of.get(job.id, [])
        if job.status == "completed" and (not starts or not ends):
            bad.append(f"job {job.id} completed but its side effect never finished")
            continue
        for k, r in enumerate(starts[:-1]):
            until = starts[k + 1]["ts"]
            end = next((e for e in ends if e["pid"] == r["pid"] and r["ts"] <= e["ts"] <= until), None)
            if end is not None:
                until = min(until, end["ts"] + grace)
            else:
                cut += 1
            if not _explained(s, r["pid"], r["ts"], until):
                bad.append(
                    f"job {job.id} ran {len(starts)} times; run {k + 1} (process {r['pid']}) was not interrupted"
                )
                break
        last = starts[-1] if starts else None
        if job.status == "completed" and last is not None and not any(
            e["pid"] == last["pid"] and e["ts"] >= last["ts"] for e in ends
        ):
            bad.append(f"job {job.id} completed, but its last run (process {last['pid']}) never finished")
        reexec += max(0, len(starts) - 1)
    return _verdict(
        "plain jobs ran at least once; re-runs = interruptions",
        len(plain),
        f"{len(plain)} plain jobs; {reexec} re-execution(s), each after its process was stopped"
        f"{' or the database restarted' if s.restarts else ''}: {cut} cut "
        f"short mid-handler, {reexec - cut} lost their outcome between handler end and write",
        bad,
    )


def check_fanouts(s: Snapshot) -> Verdict:
    by_id = {j.id: j for j in s.jobs}
    children: dict[str, list[JobRow]] = defaultdict(list)
    for j in s.jobs:
        if j.parent_id:
            children[j.parent_id].append(j)
    bad: list[str] = []
    for parent_id, case in s.fanouts.items():
        parent = by_id.get(parent_id)
        if parent is None:
            bad.append(f"fan-out parent {parent_id} missing")
            continue
        kids = children.get(parent_id, [])
        if len(kids) != case.width:
            bad.append(f"fan-out {parent_id} ({case.strategy}) has {len(kids)} sub-jobs, expected {case.width}")
        ok = sum(1 for k in kids if k.status == "completed")
        not_ok = sum(1 for k in kids if k.status in ("failed", "cancelled"))
        if case.strategy == "fail_fast":
            want = "failed" if not_ok else "completed"
        elif case.strategy == "collect_all":
            want = "completed"
        else:
            need = math.ceil(case.threshold * case.width)
            want = "completed" if ok >= need else ("failed" if case.width - not_ok < need else "?")
        if parent.status != want:
            bad.append(
                f"fan-out {parent_id} ({case.strategy}): {ok} ok, {not_ok} failed sub-jobs, parent "
                f"{parent.status}, expected {want}"
            )
        if want == "completed" and case.strategy == "collect_all":
            for r in (r for r in s.ledger if r["kind"] == "fanout_done" and r["job"] == parent_id):
                if sum(1 for v in r["oks"] if v) != ok:
                    bad.append(f"fan-out {parent_id}: results report {sum(r['oks'])} ok, sub-jobs {ok} completed")
    return _verdict(
        "fan-out outcomes match sub-jobs and strategy",
        len(s.fanouts),
        f"{len(s.fanouts)} fan-outs ({', '.join(sorted({c.strategy for c in s.fanouts.values()}))})",
        bad,
    )


def _unique_runs(s: Snapshot) -> dict[str, list[tuple[float, float | None]]]:
    """Each unique job's handler runs as (start, end); a run cut by a kill has no end."""
    runs: dict[str, list[tuple[float, float | None]]] = defaultdict(list)
    open_runs: dict[tuple[str, int], float] = {}
    for row in sorted((r for r in s.ledger if r["kind"] == "unique"), key=lambda r: r["ts"]):
        at = (row["job"], row.get("pid", 0))
        if row.get("phase") == "start":
            if at in open_runs:
                runs[row["job"]].append((open_runs[at], None))
            open_runs[at] = row["ts"]
        elif at in open_runs:
            runs[row["job"]].append((open_runs.pop(at), row["ts"]))
    for (job, _), start in open_runs.items():
        runs[job].append((start, None))
    return runs


def check_unique(s: Snapshot) -> Verdict:
    """Two jobs on one key are never active together: the older one had finished before the newer one was
    created (by the database's clock) and before any run of the newer one began (by the handlers' ledger)."""
    by_key: dict[str, list[JobRow]] = defaultdict(list)
    for j in s.jobs:
        if j.unique_key:
            by_key[j.unique_key].append(j)
    runs = _unique_runs(s)
    bad: list[str] = []
    for key, jobs in by_key.items():
        jobs.sort(key=lambda j: j.created_at)
        for a, b in zip(jobs, jobs[1:], strict=False):
            end = a.completed_at if a.completed_at is not None else a.updated_at
            if a.status not in TERMINAL or end is None or b.created_at + UNIQUE_CLOCK_SLACK < end:
                bad.append(f"key {key!r}: job {b.id} created while job {a.id} was still {a.status}")
                continue
            ended = [e for _, e in runs.get(a.id, []) if e is not None]
            started = [st for st, _ in runs.get(b.id, [])]
            if ended and started and min(started) < max(ended):
                bad.append(f"key {key!r}: job {b.id} started {max(ended) - min(started):.3f}s before job {a.id} "
                           "finished its run")
    n = sum(len(v) for v in by_key.values())
    return _verdict(
        "at most one active job per unique key",
        n,
        f"{n} jobs on {len(by_key)} keys, lifetimes never overlap",
        bad,
    )


def check_schedule(s: Snapshot) -> Verdict:
    fires: dict[float | None, list[str]] = defaultdict(list)
    for j in s.jobs:
        if j.type == s.schedule_type:
            fires[j.run_at].append(j.id)
    bad = [f"fire time {t} enqueued {len(ids)} times" for t, ids in sorted(fires.items(), key=lambda x: x[0] or 0)
           if len(ids) > 1]
    if not fires:
        bad.append("the schedule never fired")
    return _verdict(
        "each schedule fire time enqueued exactly once",
        len(fires),
        f"{len(fires)} fire times",
        bad,
    )


def check_retries(s: Snapshot) -> Verdict:
    runs: dict[str, int] = defaultdict(int)
    for row in s.ledger:
        if row["kind"] == "fail":
            runs[row["job"]] += 1
    bad: list[str] = []
    failing = [j for j in s.jobs if s.seeded.get(j.id) == "fail"]
    for job in failing:
        want = job.max_retries + 1
        got = runs.get(job.id, 0)
        if job.attempt != want:
            bad.append(f"job {job.id}: {job.attempt} attempts, expected 1 + {job.max_retries} retries")
        if got > want:
            bad.append(f"job {job.id} ran {got} times, more than 1 + {job.max_retries} retries")
        elif got < want:
            end = job.completed_at or job.updated_at
            # An attempt is spent at claim; a kill between claim and the handler's first line leaves no row.
            lost = [i for i in s.interruptions if i.ts >= job.created_at and (end is None or i.ts <= end)]
            if len(lost) < want - got:
                bad.append(f"job {job.id} ran {got} times, expected {want}")
    return _verdict(
        "retries honoured (runs = 1 + retries)",
        len(failing),
        f"{len(failing)} always-failing jobs, {sum(runs.values())} runs",
        bad,
    )


def check_running_cap(s: Snapshot) -> Verdict:
    """No sample of the limited queue's running count exceeded its cap, and no sample of the keyed queue had
    more jobs of one key running than its per-key cap (see `djobs.proof.limits`)."""
    name = "running caps (queue, per key) held throughout"
    if s.running_cap is None and s.key_cap is None:
        return _verdict(name, 0, "no limited queue in this run", [])
    over: list[str] = []
    said: list[str] = []
    for cap, samples, what in ((s.running_cap, s.running_samples, "jobs of the limited queue"),
                               (s.key_cap, s.key_samples, "jobs of one key of the keyed queue")):  # fmt: skip
        if cap is None:
            continue
        over += [f"sample {k}: {n} {what} running at once (cap {cap})" for k, n in enumerate(samples) if n > cap]
        said.append(f"{len(samples)} samples of {what} running; peak {max(samples, default=0)} of cap {cap}")
    return _verdict(name, len(s.running_samples) + len(s.key_samples), "; ".join(said), over)


#: How long past its time limit an attempt may still show as running: the limit is enforced in the worker
#: at the deadline; this covers writing the outcome on a loaded machine (SQLite's write lock, shared CPUs).
LIMIT_GRACE = 10.0


def _refunded(s: Snapshot, pid: int, start: float, end: float) -> bool:
    if any(i.pid == pid and i.kind == "term" and start <= i.ts <= end for i in s.interruptions):
        return True
    return any(t <= end and t + RESTART_WINDOW >= start for t in s.restarts)


def check_limits(s: Snapshot) -> Verdict:
    """Misbehaving handlers (hangs, their own database errors, unstorable results, impossible retry delays)
    run at most as often as their attempts allow, and no attempt holds its slot past its time limit —
    unless its worker process was killed or stopped meanwhile (then the job is recovered at the stale age)."""
    runs: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in s.ledger:
        if row["kind"] == "misbehave":
            runs[row["job"]].append(row)
    bad: list[str] = []
    jobs = [j for j in s.jobs if s.seeded.get(j.id) == "misbehave"]
    for job in jobs:
        rows = sorted(runs.get(job.id, []), key=lambda r: r["ts"])
        extra = len(rows) - (job.max_retries + 1)
        # A run beyond the attempts is explained only by an attempt given back: its process stopped gracefully
        # (drained, released) or the database restarted before the next run began. A kill -9 refunds nothing.
        explained = sum(_refunded(s, r["pid"], r["ts"], nxt["ts"]) for r, nxt in zip(rows, rows[1:], strict=False))
        if extra > explained:
            bad.append(f"{job.type} job {job.id} ran {len(rows)} times, {extra} more than 1 + {job.max_retries} "
                       "retries allow and not explained by a graceful stop")  # fmt: skip
    overdue: dict[str, float] = {}
    for ts, job_id, started, pid, limit in s.slot_samples:
        held = ts - started
        if held > limit + LIMIT_GRACE and (pid is None or not _explained(s, pid, started, ts)):
            overdue[job_id] = max(held, overdue.get(job_id, 0.0))
    bad.extend(f"job {job_id} held its slot {held:.1f}s, past its time limit" for job_id, held in overdue.items())
    return _verdict(
        "no job runs more than its attempts allow and no slot stays taken past its limit",
        len(jobs) + len(s.slot_samples),
        f"{len(jobs)} misbehaving jobs, {sum(len(runs[j.id]) for j in jobs)} runs; {len(s.slot_samples)} samples "
        "of running jobs with a time limit",
        bad,
    )


CHECKS: tuple[Callable[[Snapshot], Verdict], ...] = (
    check_terminal,
    check_steps_exactly_once,
    check_plain_at_least_once,
    check_fanouts,
    check_unique,
    check_schedule,
    check_retries,
    check_running_cap,
    check_limits,
)


def check(snapshot: Snapshot) -> list[Verdict]:
    return [fn(snapshot) for fn in CHECKS]
