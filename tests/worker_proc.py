"""A real djobs worker process for the core-engine tests, and the test-side handle that starts it.

    python tests/worker_proc.py URL --ledger PATH [--queues '{"default": 4}'] [--only rec,slow] [--hooks]
        [--heartbeat 0.2] [--stale-age 2] [--stale-interval 0.5] [--drain-timeout 30]
        [--handlers wedge_handlers] [--default-timeout 5]

It connects, registers the handlers of tests/core_handlers.py (or of the module named by --handlers, which
has the same `register(queue, ledger, only=, hooks=)`), prints `ready`, and runs
`queue.worker(...).run()` until SIGTERM/SIGINT, exiting 0 after the drain. stdout and stderr go to a log
file (never a pipe that could fill up and block the worker).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("url")
    p.add_argument("--ledger", required=True)
    p.add_argument("--queues", default='{"default": 4}')
    p.add_argument("--only", default="")
    p.add_argument("--hooks", action="store_true")
    p.add_argument("--heartbeat", type=float, default=0.2)
    p.add_argument("--stale-age", type=float, default=2.0)
    p.add_argument("--stale-interval", type=float, default=0.5)
    p.add_argument("--drain-timeout", type=float, default=30.0)
    p.add_argument("--poll", type=float, default=0.1)
    p.add_argument("--handlers", default="core_handlers")
    p.add_argument("--default-timeout", type=float, default=None)
    opts = p.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(process)d %(name)s %(levelname)s %(message)s"
    )

    import djobs

    sys.path.insert(0, str(HERE))
    import importlib

    from core_handlers import Ledger

    register = importlib.import_module(opts.handlers).register

    store = djobs.connect(opts.url)
    queue = djobs.Queue(store)
    only = {n for n in opts.only.split(",") if n} or None
    register(queue, Ledger(opts.ledger), only=only, hooks=opts.hooks)
    worker = queue.worker(
        queues=json.loads(opts.queues),
        heartbeat_interval=opts.heartbeat,
        stale_lock_age=opts.stale_age,
        stale_lock_interval=opts.stale_interval,
        drain_timeout=opts.drain_timeout,
        poll_interval=opts.poll,
        default_timeout=opts.default_timeout,
    )
    print(f"ready {worker.id}", flush=True)
    worker.run()
    print("exited cleanly", flush=True)
    return 0


class WorkerProc:
    """One worker process started by a test; `procs` fixtures kill leftovers by pid at teardown."""

    def __init__(self, url: str, ledger: str | os.PathLike[str], log_dir: Path, *extra: str,
                 env: dict[str, str] | None = None) -> None:
        self.url = url
        self.env = dict(env or {})
        self.ledger = str(ledger)
        self.extra = list(extra)
        self.log_dir = log_dir
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path: Path | None = None

    def start(self) -> WorkerProc:
        n = len(list(self.log_dir.glob("worker-*.log")))
        self.log_path = self.log_dir / f"worker-{n}.log"
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, str(HERE / "worker_proc.py"), self.url, "--ledger", self.ledger, *self.extra],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**os.environ, "PYTHONUNBUFFERED": "1", **self.env},
            )
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace") if self.log_path else ""
        except FileNotFoundError:
            return ""

    def tail(self, n: int = 30) -> str:
        return "\n".join(self.log_text().splitlines()[-n:])

    def worker_id(self, timeout: float = 60.0) -> str:
        """Wait for `ready` and return the worker's id."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in self.log_text().splitlines():
                if line.startswith("ready "):
                    return line.split(" ", 1)[1].strip()
            if not self.alive():
                raise RuntimeError(f"worker process exited before it was ready:\n{self.tail()}")
            time.sleep(0.02)
        raise TimeoutError(f"worker process not ready within {timeout:.0f}s:\n{self.tail()}")

    def kill9(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, sig)

    def wait(self, timeout: float) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout=timeout)

    def cleanup(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            try:
                os.kill(self.proc.pid, signal.SIGCONT)
                os.kill(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pass


if __name__ == "__main__":
    sys.exit(main())
