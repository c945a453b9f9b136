"""Worker processes for the proof commands: start, wait for `ready`, kill -9, stop gracefully, restart.

    proc = WorkerProcess([url, "--role", "selftest", ...], log_dir)
    proc.start(); proc.wait_ready(30)
    proc.kill()        # SIGKILL; returns the Interruption it caused (for the invariant checks)
    proc.terminate()   # SIGTERM: the worker drains and exits
    proc.start()       # again: a new process in the same slot

Each process writes stdout and stderr to its own log file (never a pipe that could fill and block it);
`ready` is read from that file.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

from djobs.proof.invariants import Interruption

#: The directory holding this djobs package: the workers run the same djobs as the process that starts them
#: (a benchmark run from another checkout measures that checkout, not the installed one).
_ROOT = str(Path(__file__).resolve().parent.parent.parent)


class WorkerProcess:
    def __init__(self, args: list[str], log_dir: str | os.PathLike[str], slot: int = 0, stdin_pipe: bool = False):
        self.args = args
        self.log_dir = Path(log_dir)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.slot = slot
        self.stdin_pipe = stdin_pipe
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path: Path | None = None
        self.generation = 0
        self.forced = False  # the last terminate() had to fall back to SIGKILL

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def start(self) -> None:
        self.generation += 1
        self.log_path = self.log_dir / f"worker-{self.slot}-{self.generation}.log"
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "djobs.proof.worker", *self.args],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.PIPE if self.stdin_pipe else subprocess.DEVNULL,
                env={**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": os.pathsep.join(
                    p for p in (_ROOT, os.environ.get("PYTHONPATH")) if p
                )},  # fmt: skip
            )

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace") if self.log_path else ""
        except FileNotFoundError:
            return ""

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if "ready" in self.log_text().split("\n"):
                return
            if not self.alive():
                raise RuntimeError(f"worker process exited before it was ready:\n{self.log_tail()}")
            time.sleep(0.02)
        raise TimeoutError(f"worker process not ready within {timeout:.0f}s:\n{self.log_tail()}")

    def go(self) -> None:
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write(b"go\n")
        self.proc.stdin.flush()

    def log_tail(self, lines: int = 15) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def kill(self) -> Interruption | None:
        if not self.alive():
            return None
        assert self.proc is not None
        ts = time.time()
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        return Interruption(ts, self.proc.pid, "kill")

    def terminate(self, timeout: float = 60.0) -> Interruption | None:
        """SIGTERM and wait for the drain; SIGKILL if it does not exit within `timeout` (then `forced`)."""
        if not self.alive():
            return None
        assert self.proc is not None
        ts = time.time()
        self.forced = False
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.forced = True
            self.proc.kill()
            self.proc.wait()
        return Interruption(ts, self.proc.pid, "term")

    def wait(self, timeout: float | None = None) -> int:
        """The exit code, as `Popen.wait`, but returning the moment the process ends: with a timeout,
        `Popen.wait` polls with sleeps growing to 50 ms, which put up to 50 ms on every drain a benchmark
        timed (its raw baseline, read through a pipe, had none). A pidfd becomes readable at the exit."""
        assert self.proc is not None
        if timeout is not None and self.proc.returncode is None and hasattr(os, "pidfd_open"):
            try:
                fd = os.pidfd_open(self.proc.pid)
            except OSError:  # already reaped, or a kernel without pidfds: Popen's own wait
                fd = -1
            if fd >= 0:
                try:
                    if not select.select([fd], [], [], timeout)[0]:
                        raise subprocess.TimeoutExpired(self.proc.args, timeout)
                finally:
                    os.close(fd)
        return self.proc.wait(timeout=timeout)

    def crashed(self) -> bool:
        """Exited by itself with an error (not by our signal)."""
        if self.proc is None or self.proc.poll() is None:
            return False
        return self.proc.returncode not in (0, -signal.SIGKILL, -signal.SIGTERM)


def terminate_all(procs: list[WorkerProcess], timeout: float = 60.0) -> list[WorkerProcess]:
    """SIGTERM every live process at once and wait for each; returns those that needed SIGKILL."""
    import threading

    threads = [threading.Thread(target=p.terminate, args=(timeout,)) for p in procs if p.alive()]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return [p for p in procs if p.forced]
