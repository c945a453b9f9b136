"""`djobs worker`: run a worker until SIGTERM/SIGINT (it drains first), or with `--burst` until idle.

`--reload` runs the worker in a child process under watchfiles `run_process` and restarts it when a
Python file (or the config) changes in the handler modules' directories; watchfiles stops the child with
SIGINT, which drains like SIGTERM. With `NOTIFY_SOCKET` set (systemd `Type=notify`) the worker sends
READY=1 once the database is open, WATCHDOG=1 every half `WATCHDOG_USEC`, and STOPPING=1 when the drain begins.
"""

from __future__ import annotations

import os
import shlex
import socket
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import typer

from djobs.cli import common, complete

DEFAULT_CONCURRENCY = 10
MAX_CONCURRENCY = 10_000  # slots of one queue in one worker (each sync slot is a thread)
DRAIN_TIMEOUT = 30.0  # seconds; the worker's own default (graceful stop)
STALE_AFTER = 30.0  # seconds without a heartbeat before a worker's jobs return to pending


def parse_queue_specs(specs: list[str], concurrency: int | None) -> dict[str, int]:
    """`["emails:5", "default"]` → `{"emails": 5, "default": concurrency or 10}`; raises UsageProblem."""
    queues: dict[str, int] = {}
    for spec in specs:
        name, sep, count = spec.rpartition(":") if ":" in spec else (spec, "", "")
        name = name.strip()
        if not name:
            raise common.UsageProblem(f"--queue: bad spec {spec!r} (use NAME or NAME:CONCURRENCY)")
        if sep:
            if not count.strip().isdigit() or not 1 <= int(count) <= MAX_CONCURRENCY:
                raise common.UsageProblem(
                    f"--queue: bad concurrency in {spec!r} (a whole number from 1 to {MAX_CONCURRENCY})"
                )
            queues[name] = int(count)
        else:
            queues[name] = concurrency or DEFAULT_CONCURRENCY
    return queues


def resolve_queues(specs: list[str], concurrency: int | None, configured: Mapping[str, int]) -> dict[str, int]:
    """Queues to serve: `--queue`s, else the config's `[queues.*]` (`-c` overrides), else `default`."""
    if specs:
        return parse_queue_specs(specs, concurrency)
    if configured:
        return {name: concurrency or n for name, n in configured.items()}
    return {"default": concurrency or DEFAULT_CONCURRENCY}


def sd_notify(message: str) -> bool:
    """Send `message` (e.g. "READY=1") to systemd's NOTIFY_SOCKET; False when there is none."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):  # abstract namespace socket
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.setblocking(False)  # a reader that falls behind must never stall the worker
            sock.connect(address)
            sock.sendall(message.encode())
    except OSError:  # no such socket, or its queue is full (BlockingIOError): drop the message
        return False
    return True


class _Notifier:
    """Tells systemd (NOTIFY_SOCKET) how the worker is doing: READY=1 once the database is open, WATCHDOG=1
    every half WATCHDOG_USEC, and STOPPING=1 as soon as the drain begins (`worker.stopping`)."""

    def __init__(self, worker: Any) -> None:
        self.worker = worker
        self.done = threading.Event()
        self.stopping_sent = False
        usec = os.environ.get("WATCHDOG_USEC", "")
        self.watchdog = int(usec) / 1_000_000 / 2 if usec.isdigit() and int(usec) > 0 else None

    def start(self, queues: dict[str, int]) -> None:
        if not os.environ.get("NOTIFY_SOCKET"):
            return
        sd_notify(f"READY=1\nSTATUS=serving {', '.join(queues)}\nMAINPID={os.getpid()}")
        threading.Thread(target=self._loop, name="djobs-sd-notify", daemon=True).start()

    def _loop(self) -> None:
        tick = min(0.2, self.watchdog or 0.2)
        next_beat = time.monotonic()
        while not self.done.wait(tick):
            if self.watchdog is not None and time.monotonic() >= next_beat:
                sd_notify("WATCHDOG=1")
                next_beat = time.monotonic() + self.watchdog
            if getattr(self.worker, "stopping", False):
                self._stopping()

    def _stopping(self) -> None:
        if not self.stopping_sent:
            self.stopping_sent = True
            sd_notify("STOPPING=1")

    def finish(self) -> None:
        """After run() returned: STOPPING=1 if the drain was too quick for the loop to see it."""
        self.done.set()
        if os.environ.get("NOTIFY_SOCKET"):
            self._stopping()


def watch_paths(conf: Any) -> list[Path]:
    """Directories to watch for `--reload`: those of the handler modules, the config's, else the cwd."""
    import importlib.util

    dirs: list[Path] = []
    if conf is not None:
        for name in conf.handler_modules():
            try:
                spec = importlib.util.find_spec(name)
            except (ImportError, ValueError):
                spec = None
            if spec is None or not spec.origin or spec.origin in ("built-in", "frozen"):
                continue
            origin = Path(spec.origin).resolve()
            if "site-packages" in origin.parts:  # installed code does not change under a developer
                continue
            # a package: watch the package directory; a module: the directory holding it
            dirs.append(origin.parent)
        if conf.path is not None:
            dirs.append(conf.path.resolve().parent)
    if not dirs:
        dirs.append(Path.cwd())
    kept: list[Path] = []
    for d in sorted(set(dirs), key=lambda p: len(p.parts)):  # parents first: drop dirs already covered
        if not any(k == d or k in d.parents for k in kept):
            kept.append(d)
    return kept


def _seconds(option: str, given: str | None, default: float) -> float:
    if given is None:
        return default
    from djobs.cli.jobs import parse_duration_option

    return float(parse_duration_option(option, given).total_seconds())


def _child_command(
    st: common.State, queues: dict[str, int], scheduler: bool, burst: bool, drain: float, stale: float
) -> str:
    argv = [sys.executable, "-m", "djobs"]
    if st.config_path:
        argv += ["--config", st.config_path]
    if st.database:
        argv += ["--database", st.database]
    if st.debug:
        argv.append("--debug")
    argv.append("worker")
    for name, n in queues.items():
        argv += ["--queue", f"{name}:{n}"]
    argv.append("--scheduler" if scheduler else "--no-scheduler")
    if burst:
        argv.append("--burst")
    argv += ["--drain-timeout", f"{drain:g}", "--stale-after", f"{stale:g}"]
    return shlex.join(argv)


def worker(
    ctx: typer.Context,
    queue_specs: list[str] | None = typer.Option(
        None, "--queue", "-q", envvar="DJOBS_WORKER_QUEUE", metavar="NAME[:CONCURRENCY]",
        autocompletion=complete.queue_names,
        help="Serve this queue (repeatable) [default: the config's [queues.*], else default].",
    ),  # fmt: skip
    concurrency: int | None = typer.Option(
        None, "--concurrency", "-c", envvar="DJOBS_WORKER_CONCURRENCY", metavar="N", min=1, max=MAX_CONCURRENCY,
        help="Concurrency for queues without :N (overrides the config) [default: 10].",
    ),  # fmt: skip
    scheduler: bool | None = typer.Option(
        None, "--scheduler/--no-scheduler", envvar="DJOBS_WORKER_SCHEDULER",
        help="Also fire schedules [default: the config's [worker] scheduler, else on].",
    ),  # fmt: skip
    reload: bool = typer.Option(
        False, "--reload", envvar="DJOBS_WORKER_RELOAD", help="Restart when handler code changes (development)."
    ),
    burst: bool = typer.Option(
        False, "--burst", envvar="DJOBS_WORKER_BURST", help="Exit once no runnable work is left."
    ),
    drain_timeout: str | None = typer.Option(
        None, "--drain-timeout", envvar="DJOBS_WORKER_DRAIN_TIMEOUT", metavar="DURATION",
        help="On SIGTERM/SIGINT, let running jobs finish this long [default: [worker] drain_timeout, else 30s].",
    ),  # fmt: skip
    stale_after: str | None = typer.Option(
        None, "--stale-after", envvar="DJOBS_WORKER_STALE_AFTER", metavar="DURATION",
        help="Requeue jobs of workers silent this long [default: [worker] stale_after, else 30s].",
    ),  # fmt: skip
    metrics_port: str | None = typer.Option(
        None, "--metrics-port", envvar="DJOBS_WORKER_METRICS_PORT", metavar="[HOST:]PORT",
        help="Serve Prometheus /metrics, /healthz and /readyz on this port (loopback; HOST:PORT, e.g. "
        "0.0.0.0:9100, to listen elsewhere).",
    ),  # fmt: skip
) -> None:
    """Run a worker until SIGTERM/SIGINT.

    On SIGTERM or SIGINT it stops claiming, lets running jobs finish (--drain-timeout), then exits 0.
    """
    st = common.state(ctx)
    conf = st.config()
    queues = resolve_queues(list(queue_specs or []), concurrency, conf.queues if conf else {})
    use_scheduler = scheduler if scheduler is not None else (conf.scheduler if conf else True)
    drain = _seconds("--drain-timeout", drain_timeout, conf.drain_timeout if conf else DRAIN_TIMEOUT)
    stale = _seconds("--stale-after", stale_after, conf.stale_after if conf else STALE_AFTER)
    if stale <= 0:
        raise common.UsageProblem("--stale-after: must be more than zero")
    if metrics_port is not None:
        from djobs.metrics import parse_address

        try:
            parse_address(metrics_port)
        except ValueError as exc:
            raise common.UsageProblem(f"--metrics-port: {exc}") from None

    if reload:
        from watchfiles import PythonFilter, run_process

        if metrics_port is not None:  # the child serves them (it inherits the environment)
            os.environ["DJOBS_WORKER_METRICS_PORT"] = metrics_port
        paths = watch_paths(conf)
        print(f"djobs: watching {', '.join(map(str, paths))} for changes", file=sys.stderr)
        run_process(
            *paths,
            target=_child_command(st, queues, use_scheduler, burst, drain, stale),
            target_type="command",
            watch_filter=PythonFilter(extra_extensions=(".toml",)),
            sigint_timeout=int(drain) + 5,
            callback=lambda changes: print("djobs: code changed, restarting the worker", file=sys.stderr),
        )
        return

    queue = common.open_queue(st)
    common.apply_schedules(st, queue)  # the config is the truth for its schedules: every worker syncs them
    common.apply_flow(st, queue)  # and for the limits and retention it declares
    extra: dict[str, Any] = {"queue_timeouts": conf.queue_timeouts()} if conf else {}
    if metrics_port is not None:
        from djobs.metrics import run_metrics

        extra["observers"] = [run_metrics()]
    w = queue.worker(
        queues=queues, scheduler=use_scheduler, burst=burst, drain_timeout=drain, stale_lock_age=stale, **extra
    )
    metrics_server = _serve_metrics(queue, w, metrics_port) if metrics_port is not None else None
    notifier = _Notifier(w)
    notifier.start(queues)
    if not st.json:
        served = ", ".join(f"{n}:{c}" for n, c in queues.items())
        print(f"djobs: worker {w.id} serving {served}{' (burst)' if burst else ''}", file=sys.stderr)
    _log_to_stderr()
    try:
        w.run()
    finally:
        notifier.finish()
        if metrics_server is not None:
            metrics_server.close()
    if w.abandoned_handlers:
        # Handlers that outlived the drain were released and cancelled but a thread cannot be killed:
        # leave now rather than let interpreter shutdown wait for them forever.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)


def _serve_metrics(queue: Any, w: Any, address: str) -> Any:
    """Start `--metrics-port` (djobs.metrics.WorkerEndpoints) and say where it listens."""
    import socket as _socket

    from djobs.metrics import run_metrics, serve_worker_metrics

    try:
        server = serve_worker_metrics(queue, w, run_metrics(), address)
    except _socket.gaierror as exc:
        raise common.UsageProblem(f"--metrics-port: cannot listen on {address}: {exc}") from None
    except OSError as exc:
        raise common.OperationFailed(f"--metrics-port: cannot listen on {address}: {exc.strerror or exc}") from None
    host = address.rpartition(":")[0].strip("[]") or "127.0.0.1"
    shown = f"[{host}]" if ":" in host else host
    print(f"djobs: metrics on http://{shown}:{server.port}/metrics (also /healthz, /readyz)", file=sys.stderr, flush=True)
    return server


def _log_to_stderr() -> None:
    """One line per finished job on stderr (DJOBS_LOG_LEVEL=WARNING keeps only problems)."""
    import logging

    level = os.environ.get("DJOBS_LOG_LEVEL", "INFO").upper()
    logging.basicConfig(
        level=getattr(logging, level, logging.INFO), stream=sys.stderr, format="%(asctime)s %(levelname)s %(message)s"
    )


def register(app: typer.Typer) -> None:
    app.command()(worker)
