"""Handlers and helpers shared by the durable / fan-out / control / schedule tests.

Every handler records its side effects in a ledger: an append-only file in a per-test directory, each line
written with O_APPEND and fsync, so lines written by a worker process survive its `kill -9` and lines from
several processes never interleave. Handlers that must wait for the test wait on a *gate*: a file in the
same directory that the test creates (`open_gate`). Waiting handlers are cooperative: they notice
`ctx.cancelled` and record that they did.

`register(queue, ledger_dir)` registers every handler on a Queue; `tests/durable_worker_proc.py` does the
same in a worker process. `WorkerProcs` spawns real worker processes (`sys.executable` on that script) and
kills them by their own pid only.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import djobs

HERE = Path(__file__).resolve().parent
WORKER_SCRIPT = HERE / "durable_worker_proc.py"
LEDGER = "ledger.log"


# -- ledger and gates ----------------------------------------------------------------------------------------
def record(ledger_dir: str | Path, *fields: object) -> None:
    """Append one line (space-separated fields) to the ledger, durably."""
    line = " ".join(str(f) for f in fields) + "\n"
    fd = os.open(os.path.join(ledger_dir, LEDGER), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
        os.fsync(fd)
    finally:
        os.close(fd)


def read_ledger(ledger_dir: str | Path) -> list[list[str]]:
    try:
        text = Path(ledger_dir, LEDGER).read_text()
    except FileNotFoundError:
        return []
    return [line.split(" ") for line in text.splitlines() if line]


def entries(ledger_dir: str | Path, kind: str) -> list[list[str]]:
    return [e for e in read_ledger(ledger_dir) if e[0] == kind]


def count(ledger_dir: str | Path, kind: str, *fields: str) -> int:
    n = len(fields)
    return sum(1 for e in entries(ledger_dir, kind) if tuple(e[1 : 1 + n]) == fields)


def counts(ledger_dir: str | Path, kind: str, width: int = 1) -> Counter[tuple[str, ...]]:
    return Counter(tuple(e[1 : 1 + width]) for e in entries(ledger_dir, kind))


def open_gate(ledger_dir: str | Path, name: str) -> None:
    Path(ledger_dir, f"gate-{name}").touch()


def gate_open(ledger_dir: str | Path, name: str) -> bool:
    """A gate is open when its file exists, or when the test opened every gate (gate "ALL", at teardown)."""
    return os.path.exists(os.path.join(ledger_dir, f"gate-{name}")) or os.path.exists(
        os.path.join(ledger_dir, "gate-ALL")
    )


def wait_until(
    pred: Callable[[], Any], timeout: float = 30.0, what: str = "condition", poll: float = 0.02
) -> Any:
    """Poll `pred` until it returns something truthy (returned); AssertionError after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(poll)


def status(queue: djobs.Queue, job_id: str) -> str:
    job = queue.get_job(job_id)
    assert job is not None, job_id
    return job.status.value


def wait_status(queue: djobs.Queue, job_id: str, *statuses: str, timeout: float = 30.0) -> djobs.Job:
    def check() -> djobs.Job | None:
        job = queue.get_job(job_id)
        return job if job is not None and job.status.value in statuses else None

    try:
        return wait_until(check, timeout, f"job {job_id} to be {'/'.join(statuses)}")
    except AssertionError:
        job = queue.get_job(job_id)
        raise AssertionError(
            f"job {job_id} is {job.status.value if job else None} (last_error={job.last_error if job else None}), "
            f"not {'/'.join(statuses)} after {timeout:g}s"
        ) from None


def sql(queue: djobs.Queue, text: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Run raw SQL (`?` placeholders) against the test's database; rows for a SELECT."""
    st = queue.storage
    with st.tx():
        cur = st.db.execute_sql(st.dialect.render(text), params)
        try:
            return [tuple(r) for r in cur.fetchall()]
        except Exception:
            return []


def in_process_worker(queue: djobs.Queue, **options: Any) -> djobs.Worker:
    opts: dict[str, Any] = {
        "queues": {"default": 4},
        "heartbeat_interval": 0.5,
        "stale_lock_age": 3.0,
        "stale_lock_interval": 0.5,
        "poll_interval": 0.05,
    }
    opts.update(options)
    return queue.worker(**opts)


# -- handlers ------------------------------------------------------------------------------------------------
def _wait_gate(ctx: djobs.Context, ledger_dir: str, gate: str, tag: str) -> None:
    """Wait for the gate, cooperatively: a cancelled (or aggressively paused) job records it and unwinds."""
    while not gate_open(ledger_dir, gate):
        if ctx.cancelled:
            record(ledger_dir, "cancelled", tag, ctx.job.attempt, os.getpid())
            ctx.raise_if_cancelled()
        time.sleep(0.02)


def _strategy(text: str | None) -> djobs.Strategy | None:
    if text is None:
        return None
    if text == "fail_fast":
        return djobs.FAIL_FAST
    if text == "collect_all":
        return djobs.COLLECT_ALL
    if text.startswith("threshold:"):
        return djobs.threshold(float(text.split(":", 1)[1]))
    raise ValueError(text)


def _sub(spec: dict[str, Any]) -> djobs.Sub:
    return djobs.Sub(
        spec["type"],
        spec.get("args"),
        priority=spec.get("priority"),
        retries=spec.get("retries"),
        queue=spec.get("queue"),
    )


def result_summary(results: list[djobs.Result]) -> list[dict[str, Any]]:
    out = []
    for r in results:
        err = r.error
        out.append(
            {
                "index": r.index,
                "job_id": r.job_id,
                "ok": r.ok,
                "value": r.value,
                "error": None if err is None else type(err).__name__,
                "status": getattr(err, "status", None),
            }
        )
    return out


def register(queue: djobs.Queue, ledger_dir: str | Path) -> None:  # noqa: C901 - one place for all handlers
    """Register every test handler on `queue`, recording into `ledger_dir`."""
    led = str(ledger_dir)

    # A plain job: records its run; optionally waits for a gate, fails, or returns a value.
    @queue.handler("rec")
    def rec(ctx: djobs.Context, args: dict) -> Any:
        tag = args["tag"]
        record(led, "rec", tag, ctx.job.attempt, os.getpid())
        if args.get("gate"):
            _wait_gate(ctx, led, args["gate"], tag)
        if args.get("sleep"):
            time.sleep(args["sleep"])
        fail = args.get("fail")
        if fail == "noretry":
            raise djobs.NoRetry(f"rec {tag} refuses")
        if fail == "error":
            raise RuntimeError(f"rec {tag} broke")
        if fail == "once" and ctx.job.attempt == 1:
            raise djobs.RetryAfter(0.05, f"rec {tag} fails once")
        record(led, "rec-done", tag, ctx.job.attempt, os.getpid())
        return args.get("value", tag)

    # One durable step: its side effect is the ledger line.
    @queue.handler("step")
    def step(ctx: djobs.Context, args: dict) -> dict:
        record(led, "step", args["wf"], args["n"], ctx.job.attempt, os.getpid())
        return {"wf": args["wf"], "n": args["n"], "sq": args["n"] * args["n"]}

    @queue.handler("step-b")
    def step_b(args: dict) -> str:
        record(led, "step-b", args["wf"])
        return "b"

    # A step that waits for a gate (the step a test kills, pauses or cancels in flight).
    @queue.handler("hang")
    def hang(ctx: djobs.Context, args: dict) -> str:
        tag = args["tag"]
        record(led, "hang-start", tag, ctx.job.attempt, os.getpid())
        _wait_gate(ctx, led, args["gate"], tag)
        record(led, "hang-done", tag, ctx.job.attempt, os.getpid())
        return f"hung {tag}"

    # A workflow of `steps` durable steps. Options: fail (once, retryable) right after step `fail_after` on
    # the first attempt; make step `hang_at` a gated step; fail after each new step ("creep": attempt k
    # completes step k-1 and then fails, so every resume replays all earlier checkpoints).
    @queue.handler("workflow", retries=5)
    def workflow(ctx: djobs.Context, args: dict) -> list:
        wf = args["wf"]
        record(led, "wf-run", wf, ctx.job.attempt, os.getpid())
        out = []
        for i in range(args["steps"]):
            if args.get("hang_at") == i:
                out.append(ctx.call("hang", {"tag": wf, "gate": args["gate"]}))
            else:
                out.append(ctx.call("step", {"wf": wf, "n": i}))
            if args.get("fail_after") == i and ctx.job.attempt == 1:
                raise djobs.RetryAfter(args.get("retry_delay", 0.05), f"injected failure after step {i}")
            if args.get("creep") and i == ctx.job.attempt - 1 and i < args["steps"] - 1:
                raise djobs.RetryAfter(0.05, f"creeping failure after step {i}")
        record(led, "wf-done", wf, ctx.job.attempt, os.getpid())
        return out

    # NoRetry raised inside a call is checkpointed; the workflow catches it, then fails retryably once.
    @queue.handler("refuse")
    def refuse(args: dict) -> None:
        record(led, "refuse", args["wf"])
        raise djobs.NoRetry(f"refused {args['wf']}")

    @queue.handler("catch-noretry", retries=3)
    def catch_noretry(ctx: djobs.Context, args: dict) -> str:
        wf = args["wf"]
        try:
            ctx.call("refuse", {"wf": wf})
        except djobs.NoRetry as exc:
            record(
                led, "caught", wf, ctx.job.attempt, type(exc).__name__, json.dumps(str(exc)).replace(" ", "_")
            )
            caught = str(exc)
        else:
            raise AssertionError("refuse returned")
        ctx.call("step", {"wf": wf, "n": 1})
        if ctx.job.attempt == 1:
            raise RuntimeError("fail once after the refused call")
        return caught

    # The first attempt calls "step" at index 0; later attempts call "step-b" there: a determinism violation.
    @queue.handler("nondeterministic", retries=5)
    def nondeterministic(ctx: djobs.Context, args: dict) -> str:
        record(led, "nd-run", args["wf"], ctx.job.attempt)
        if ctx.job.attempt == 1:
            ctx.call("step", {"wf": args["wf"], "n": 0})
            raise djobs.RetryAfter(0.05, "fail once")
        if args.get("fan"):  # a fan-out where the checkpoint holds a call
            ctx.fan_out([djobs.Sub("rec", {"tag": args["wf"]})])
        else:
            ctx.call("step-b", {"wf": args["wf"]})
        return "should not get here"

    # Nested durable calls through the module-level twins (djobs.call inside a called handler).
    @queue.handler("mid")
    def mid(ctx: djobs.Context, args: dict) -> list:
        record(led, "mid", args["wf"], ctx.job.attempt)
        assert djobs.current_job_id() == ctx.job_id
        a = djobs.call("step", {"wf": args["wf"], "n": 10})
        b = djobs.call("step", {"wf": args["wf"], "n": 11})
        return [a["sq"], b["sq"]]

    @queue.handler("nested", retries=3)
    def nested(ctx: djobs.Context, args: dict) -> dict:
        wf = args["wf"]
        record(led, "nested-run", wf, ctx.job.attempt)
        first = ctx.call("step", {"wf": wf, "n": 1})
        inner = ctx.call("mid", {"wf": wf})
        last = ctx.call("step", {"wf": wf, "n": 2})
        if ctx.job.attempt == 1:
            raise djobs.RetryAfter(0.05, "fail once after the nested calls")
        return {"first": first["sq"], "inner": inner, "last": last["sq"]}

    # Results come back after a JSON round trip, first run and replay alike.
    @queue.handler("shapes")
    def shapes(args: dict) -> dict:
        record(led, "shapes", args["wf"])
        return {"tuple": (1, 2, 3), "intkeys": {1: "one"}, "nested": [(4, 5)], "f": 1.5, "none": None}

    @queue.handler("roundtrip", retries=3)
    def roundtrip(ctx: djobs.Context, args: dict) -> Any:
        value = ctx.call("shapes", {"wf": args["wf"]})
        record(led, "seen", args["wf"], ctx.job.attempt, json.dumps(value, sort_keys=True).replace(" ", ""))
        if ctx.job.attempt == 1:
            raise djobs.RetryAfter(0.05, "fail once")
        return value

    # Named checkpoints through ctx and the module twins; current_job() from plain helper code.
    def helper_sees_job() -> str | None:
        job = djobs.current_job()
        return job.id if job is not None else None

    @queue.handler("named", retries=3)
    def named(ctx: djobs.Context, args: dict) -> dict:
        wf = args["wf"]
        absent = ctx.load_checkpoint("never-saved")
        phase, found = ctx.load_checkpoint("phase")
        record(led, "named-run", wf, ctx.job.attempt, json.dumps([phase, found]).replace(" ", ""))
        record(led, "named-absent", wf, json.dumps(list(absent)).replace(" ", ""))
        if not found:
            ctx.save_checkpoint("phase", {"stage": 1, "items": (1, 2)})
            ctx.save_checkpoint("phase", {"stage": 2, "items": (3, 4)})  # overwrite: the last value wins
            djobs.save_checkpoint("twin", "via-module")
        twin = djobs.load_checkpoint("twin")
        again = ctx.load_checkpoint("phase")
        record(led, "named-seen", wf, ctx.job.attempt, json.dumps([list(twin), list(again)]).replace(" ", ""))
        assert helper_sees_job() == ctx.job_id == djobs.current_job_id()
        assert djobs.current_job() is not None and djobs.current_job().id == ctx.job.id  # type: ignore[union-attr]
        if ctx.job.attempt == 1:
            raise djobs.RetryAfter(0.05, "fail once after saving")
        return {"phase": again[0], "twin": twin[0]}

    # Fan-out parent. args: subs (list of Sub specs), strategy, timeout, queue, retries, cop
    # (cancel_on_parent_failure), twin (use djobs.fan_out), after (a step after the fan-out).
    @queue.handler("fan", retries=3)
    def fan(ctx: djobs.Context, args: dict) -> Any:
        tag = args["tag"]
        record(led, "fan-run", tag, ctx.job.attempt, os.getpid())
        subs = [_sub(s) for s in args["subs"]]
        opts = {
            "strategy": _strategy(args.get("strategy")),
            "queue": args.get("queue"),
            "retries": args.get("retries"),
            "timeout": args.get("timeout"),
            "cancel_on_parent_failure": bool(args.get("cop")),
        }
        if args.get("before"):
            ctx.call("step", {"wf": tag, "n": 0})
        if args.get("gate_before"):
            _wait_gate(ctx, led, args["gate_before"], tag)
        record(led, "fan-write", tag, ctx.job.attempt, os.getpid())
        if args.get("pause_before_write"):
            time.sleep(args["pause_before_write"])
        try:
            results = djobs.fan_out(subs, **opts) if args.get("twin") else ctx.fan_out(subs, **opts)
        except djobs.FanOutFailed as exc:
            record(led, "fan-failed", tag, json.dumps(result_summary(exc.results)).replace(" ", ""))
            raise
        record(led, "fan-results", tag, json.dumps(result_summary(results)).replace(" ", ""))
        if args.get("after"):
            ctx.call("step", {"wf": tag, "n": 99})
        if args.get("fail_after_fanout"):
            raise djobs.NoRetry("parent fails after its fan-out")
        return {
            "values": djobs.values(results),
            "ok": djobs.success_count(results),
            "all": djobs.all_succeeded(results),
            "errors": [type(e).__name__ for e in djobs.partition(results)[1]],
        }

    # Progress and custom events.
    @queue.handler("progress")
    def progress(ctx: djobs.Context, args: dict) -> str:
        ctx.progress(3, 10, "three of ten")
        ctx.emit("note", {"tag": args["tag"]}, persist=True)
        if args.get("gate"):
            _wait_gate(ctx, led, args["gate"], args["tag"])
        return "ok"

    @queue.handler("emitter")
    def emitter(ctx: djobs.Context, args: dict) -> int:
        for i in range(args["n"]):
            ctx.emit("seq", {"tag": args["tag"], "i": i}, persist=True)
        record(led, "emitted", args["tag"], args["n"])
        return args["n"]

    # An async handler waiting for a gate: cancellation arrives as asyncio cancellation or ctx.cancelled.
    @queue.handler("async-hang")
    async def async_hang(ctx: djobs.Context, args: dict) -> str:
        tag = args["tag"]
        record(led, "async-start", tag, ctx.job.attempt, os.getpid())
        try:
            while not gate_open(led, args["gate"]):
                if ctx.cancelled:
                    record(led, "cancelled", tag, ctx.job.attempt, os.getpid())
                    ctx.raise_if_cancelled()
                await asyncio.sleep(0.02)
        except asyncio.CancelledError:
            record(led, "cancelled", tag, ctx.job.attempt, os.getpid())
            raise
        record(led, "async-done", tag, ctx.job.attempt, os.getpid())
        return tag

    # Scheduled job: records its own id and fire time.
    @queue.handler("tick", retries=0)
    def tick(ctx: djobs.Context, args: Any) -> None:
        record(led, "tick", ctx.job.id, ctx.job.run_at.timestamp() if ctx.job.run_at else None, os.getpid())

    @queue.handler("tock", retries=0)
    def tock(ctx: djobs.Context, args: Any) -> None:
        record(led, "tock", ctx.job.id)

    from time_handlers import register_time

    register_time(queue, led, record)


# -- worker processes ----------------------------------------------------------------------------------------
class WorkerProcs:
    """Real worker processes on `durable_worker_proc.py`; every one is killed at teardown (by its pid)."""

    def __init__(self, url: str, ledger_dir: str | Path, queue: djobs.Queue | None = None) -> None:
        """With `queue`, start() returns once the process's worker is registered (or fails with its log)."""
        self.url = url
        self.queue = queue
        self.ledger_dir = str(ledger_dir)
        self.procs: list[subprocess.Popen[bytes]] = []
        self.logs: list[Path] = []

    def start(
        self,
        queues: str = "default=4",
        *,
        stale: float = 2.0,
        heartbeat: float = 0.5,
        interval: float = 0.5,
        scheduler: bool = False,
        retention: float = 300.0,
    ) -> subprocess.Popen[bytes]:
        log = Path(self.ledger_dir, f"worker-{len(self.procs)}.log")
        cmd = [
            sys.executable,
            str(WORKER_SCRIPT),
            self.url,
            self.ledger_dir,
            "--queues",
            queues,
            "--stale",
            str(stale),
            "--heartbeat",
            str(heartbeat),
            "--interval",
            str(interval),
            "--retention",
            str(retention),
        ]
        if scheduler:
            cmd.append("--scheduler")
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                cmd, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"}
            )
        self.procs.append(proc)
        self.logs.append(log)
        if self.queue is not None:
            self.wait_registered(self.queue, proc)
        return proc

    def log_text(self, proc: subprocess.Popen[bytes]) -> str:
        return self.logs[self.procs.index(proc)].read_text(errors="replace")

    def wait_registered(
        self, queue: djobs.Queue, proc: subprocess.Popen[bytes], timeout: float = 60.0
    ) -> str:
        """Wait until the process's worker row exists; returns the worker id."""

        def found() -> str | None:
            if proc.poll() is not None:
                raise AssertionError(
                    f"worker process exited ({proc.returncode}):\n{self.log_text(proc)[-3000:]}"
                )
            for w in queue.workers():
                if w.pid == proc.pid:
                    return w.id
            return None

        return str(wait_until(found, timeout, f"worker process {proc.pid} to register"))

    def kill9(self, proc: subprocess.Popen[bytes]) -> None:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)

    def terminate(self, proc: subprocess.Popen[bytes], timeout: float = 30.0) -> int:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            return proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill9(proc)
            raise AssertionError(f"worker {proc.pid} did not stop on SIGTERM within {timeout:g}s") from None

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(timeout=30)
