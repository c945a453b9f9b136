"""What a handler sees: `ctx` and the module-level twins that find the current job.

    def workflow(ctx: djobs.Context, args: dict) -> str:
        a = ctx.call("step1", args)           # checkpointed: never re-run once done
        results = ctx.fan_out([djobs.Sub("item", x) for x in a])
        return "ok"

`djobs.current_job()` and `djobs.call(...)` work from any code the handler calls, through a context var.
"""

from __future__ import annotations

import threading
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from djobs.errors import JobCancelled
from djobs.jobs import Owner

if TYPE_CHECKING:
    from djobs.jobs import Job, Result, Strategy, Sub
    from djobs.queue import Queue

_current: ContextVar[Context | None] = ContextVar("djobs_current", default=None)


@dataclass
class Replay:
    """Checkpoints of the running job, loaded once per execution so replay costs no queries."""

    rows: dict[str, tuple[str, str | None, str | None]]  # key -> (name, value json, error)
    counters: dict[str, int] = field(default_factory=dict)


class Context:
    """Per-execution handle on the running job. Nested `call`s get a child context of their own."""

    def __init__(
        self,
        queue: Queue,
        job: Job,
        worker_id: str,
        cancel: threading.Event,
        replay: Replay | None = None,
        path: str = "",
    ) -> None:
        self.queue = queue
        self.job = job
        self.worker_id = worker_id
        self._cancel = cancel
        self._replay = replay
        self._path = path
        self.owner = Owner(job.id, worker_id, job.attempt)
        #: How deep in nested durable calls this context is (0 for the handler itself).
        self.depth = path.count(".")

    # -- identity and cancellation --------------------------------------------------------------------
    @property
    def job_id(self) -> str:
        return self.job.id

    @property
    def cancelled(self) -> bool:
        """True once the job was cancelled, paused aggressively, or released by a stopping worker."""
        return self._cancel.is_set()

    def raise_if_cancelled(self) -> None:
        if self._cancel.is_set():
            raise JobCancelled(f"job {self.job.id} was cancelled")

    def wait_cancelled(self, timeout: float) -> bool:
        """Sleep up to `timeout` seconds, waking early (True) if the job is cancelled."""
        return self._cancel.wait(timeout)

    # -- durable -------------------------------------------------------------------------------------
    def replay_state(self) -> Replay:
        """The job's checkpoints, read once per execution (for djobs's durable primitives)."""
        if self._replay is None:
            from djobs.durable import storage_call

            self._replay = Replay(storage_call(self.queue.storage.load_checkpoints, self.job.id))
        return self._replay

    def next_step(self) -> tuple[str, int]:
        """The checkpoint key and index of the next durable step (for djobs's durable primitives)."""
        state = self.replay_state()
        n = state.counters.get(self._path, 0)
        state.counters[self._path] = n + 1
        return f"c:{self._path}{n}", n

    def child(self, key: str) -> Context:
        return Context(self.queue, self.job, self.worker_id, self._cancel, self.replay_state(), key[2:] + ".")

    def call(self, name: str, args: Any = None) -> Any:
        """Run handler `name` in-process as a durable step; its JSON result is checkpointed."""
        from djobs import durable

        return durable.call(self, name, args)

    def save_checkpoint(self, name: str, value: Any) -> None:
        from djobs import durable

        durable.save_checkpoint(self, name, value)

    def load_checkpoint(self, name: str) -> tuple[Any, bool]:
        from djobs import durable

        return durable.load_checkpoint(self, name)

    def fan_out(
        self,
        subs: list[Sub],
        strategy: Strategy | None = None,
        queue: str | None = None,
        retries: int | None = None,
        timeout: timedelta | float | None = None,
        cancel_on_parent_failure: bool = False,
    ) -> list[Result]:
        """Enqueue sub-jobs and wait for them durably (the worker slot is freed while they run)."""
        from djobs import durable

        return durable.fan_out(self, subs, strategy, queue, retries, timeout, cancel_on_parent_failure)

    # -- durable time and signals (the job waits holding no worker; see durable/waits.py) --------------------
    def sleep(self, duration: timedelta | float) -> None:
        """Sleep durably: the job waits, its slot free, and carries on after its next steps replay."""
        from djobs.durable import waits

        waits.sleep(self, duration)

    def sleep_until(self, when: datetime) -> None:
        from djobs.durable import waits

        waits.sleep(self, until=when)

    def wait_for_signal(self, name: str, timeout: timedelta | float | None = None) -> Any:
        """The payload of the next signal `name` sent to this job; `djobs.SignalTimeout` after `timeout`."""
        from djobs.durable import waits

        return waits.wait_for_signal(self, name, timeout)

    def check_signal(self, name: str) -> tuple[Any, bool]:
        """(payload, True) if a signal `name` is there (consumed), else (None, False); never waits."""
        from djobs.durable import waits

        return waits.check_signal(self, name)

    # -- events and progress ---------------------------------------------------------------------------
    def emit(self, kind: str, data: Any = None, persist: bool = False) -> None:
        self.queue.emit_custom(self.job.id, kind, data, persist=persist)

    def progress(self, done: float, total: float | None = None, message: str | None = None) -> None:
        """Store progress on the job (shown by inspect and the TUI) and emit a "progress" event."""
        from djobs import codec
        from djobs.durable import storage_call
        from djobs.event_types import CustomEvent

        progress = {"done": done, "total": total, "message": message}
        text = codec.dumps(progress)
        o = self.owner
        storage_call(self.queue.storage.set_progress, o.job_id, o.worker_id, o.attempt, text, self.job.queue)
        self.queue.emit(CustomEvent(job_id=self.job.id, kind="progress", data=progress))


def current_context() -> Context | None:
    return _current.get()


def _require() -> Context:
    ctx = _current.get()
    if ctx is None:
        raise RuntimeError("not inside a djobs handler")
    return ctx


def current_job() -> Job | None:
    ctx = _current.get()
    return ctx.job if ctx else None


def current_job_id() -> str | None:
    ctx = _current.get()
    return ctx.job.id if ctx else None


def call(name: str, args: Any = None) -> Any:
    return _require().call(name, args)


def save_checkpoint(name: str, value: Any) -> None:
    _require().save_checkpoint(name, value)


def load_checkpoint(name: str) -> tuple[Any, bool]:
    return _require().load_checkpoint(name)


def fan_out(subs: list[Sub], **kwargs: Any) -> list[Result]:
    return _require().fan_out(subs, **kwargs)


def sleep(duration: timedelta | float) -> None:
    """`ctx.sleep` of the running handler: the job waits durably, holding no worker."""
    _require().sleep(duration)


def sleep_until(when: datetime) -> None:
    """`ctx.sleep_until` of the running handler (a naive `when` is UTC)."""
    _require().sleep_until(when)


def wait_for_signal(name: str, timeout: timedelta | float | None = None) -> Any:
    """`ctx.wait_for_signal` of the running handler: the next signal's payload; `SignalTimeout` after `timeout`."""
    return _require().wait_for_signal(name, timeout)


def check_signal(name: str) -> tuple[Any, bool]:
    """`ctx.check_signal` of the running handler: `(payload, True)` or `(None, False)`, never waiting."""
    return _require().check_signal(name)
