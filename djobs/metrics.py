"""Prometheus metrics: what a worker process did, and what the database holds.

    metrics = djobs.metrics.run_metrics()                    # this process's run counters
    queue.worker(queues={"default": 4}, observers=[metrics]).run()

Two kinds of series, kept apart on purpose:

- **Runs in this process** (`RunMetrics`, a run observer for `queue.worker(..., observers=[...])`):
  `djobs_job_runs_total{queue,type,outcome}`, `djobs_job_duration_seconds{queue,type}` (histogram) and
  `djobs_job_runs_in_progress{queue,type}`. Each worker serves its own (`djobs worker --metrics-port`);
  Prometheus adds them up across the fleet.
- **The database's state** (`DatabaseCollector`, read at each scrape): `djobs_jobs{queue,status}`,
  `djobs_queue_lag_seconds{queue}` (how long the oldest due pending job has waited), `djobs_queue_paused`,
  `djobs_workers` (live workers), `djobs_worker_slots{queue}` and `djobs_database_up`. Served by the
  dashboard's `/metrics` only: every worker reporting them would multiply the same numbers and the
  scrape queries by the fleet's size.

Each set has its own registry (never prometheus_client's global one), so an application that already
exports metrics keeps its names and djobs cannot collide with them.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import choose_encoder

from djobs.jobs import STATUS_VALUES

if TYPE_CHECKING:
    from djobs.queue import Queue

log = logging.getLogger("djobs.metrics")

#: Run durations from 5 ms to an hour: jobs range from quick calls to long batch steps.
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
OUTCOMES = ("completed", "failed", "retried", "released", "waiting")


class RunMetrics:
    """A run observer: `run_started(job)` and `run_finished(job, outcome, seconds)` are called by the
    worker on its threads for every attempt, so they only touch in-memory counters (thread-safe)."""

    def __init__(self) -> None:
        self.runs = Counter(
            "djobs_job_runs", "Job runs (attempts) finished in this process, by outcome.",
            ["queue", "type", "outcome"], registry=None,
        )  # fmt: skip
        self.duration = Histogram(
            "djobs_job_duration_seconds", "How long job runs in this process took.",
            ["queue", "type"], buckets=DURATION_BUCKETS, registry=None,
        )  # fmt: skip
        self.in_progress = Gauge(
            "djobs_job_runs_in_progress", "Job runs going on in this process.", ["queue", "type"], registry=None
        )

    def collectors(self) -> list[Any]:
        return [self.runs, self.duration, self.in_progress]

    def run_started(self, job: Any) -> None:
        self.in_progress.labels(job.queue, job.type).inc()

    def run_finished(self, job: Any, outcome: str, seconds: float) -> None:
        self.in_progress.labels(job.queue, job.type).dec()
        self.runs.labels(job.queue, job.type, str(outcome)).inc()
        if seconds >= 0:
            self.duration.labels(job.queue, job.type).observe(seconds)


_PROCESS: RunMetrics | None = None
_PROCESS_LOCK = threading.Lock()


def run_metrics() -> RunMetrics:
    """This process's run metrics (one per process): pass it to `queue.worker(observers=[...])`; the
    dashboard's `/metrics` and the worker's metrics port both serve it."""
    global _PROCESS
    with _PROCESS_LOCK:
        if _PROCESS is None:
            _PROCESS = RunMetrics()
        return _PROCESS


class DatabaseCollector:
    """Series read from the database at each scrape through the public Queue API. A database that does
    not answer gives `djobs_database_up 0` and nothing else, never a failed scrape."""

    def __init__(self, queue: Callable[[], Queue], run: Callable[[Callable[[], Any]], Any] | None = None) -> None:
        self._queue = queue
        self._run = run or (lambda fn: fn())

    def describe(self) -> list[Any]:
        return []  # never read the database when registered

    def collect(self) -> Iterator[Any]:
        try:
            stats, lag, workers = self._run(self._read)
        except Exception as exc:
            log.warning("djobs: metrics could not read the database: %s", exc)
            yield GaugeMetricFamily("djobs_database_up", "1 when the database answered this scrape.", value=0)
            return
        yield GaugeMetricFamily("djobs_database_up", "1 when the database answered this scrape.", value=1)
        jobs = GaugeMetricFamily("djobs_jobs", "Jobs in the database by queue and status.", labels=["queue", "status"])
        paused = GaugeMetricFamily("djobs_queue_paused", "1 when the queue is paused.", labels=["queue"])
        for q in stats:
            for status in STATUS_VALUES:
                jobs.add_metric([q.name, status], float(q.counts.get(status, 0)))
            paused.add_metric([q.name], 1.0 if q.paused else 0.0)
        yield jobs
        yield paused
        lags = GaugeMetricFamily(
            "djobs_queue_lag_seconds", "How long the oldest due pending job of the queue has waited.", labels=["queue"]
        )
        for name, seconds in sorted(lag.items()):
            lags.add_metric([name], float(seconds))
        yield lags
        alive = [w for w in workers if w.alive]
        yield GaugeMetricFamily("djobs_workers", "Live workers (heartbeat within the stale age).", value=len(alive))
        slots = GaugeMetricFamily("djobs_worker_slots", "Concurrency of live workers serving the queue.", labels=["queue"])
        per_queue: dict[str, int] = {}
        for w in alive:
            for name, n in (w.queues or {}).items():
                per_queue[name] = per_queue.get(name, 0) + int(n)
        for name, n in sorted(per_queue.items()):
            slots.add_metric([name], float(n))
        yield slots

    def _read(self) -> tuple[Any, dict[str, float], Any]:
        q = self._queue()
        return q.queue_stats(), q.queue_lag(), q.workers()


def registry(collectors: Iterable[Any]) -> CollectorRegistry:
    reg = CollectorRegistry(auto_describe=False)
    for c in collectors:
        reg.register(c)
    return reg


def dashboard_registry(queue: Callable[[], Queue], run: Callable[[Callable[[], Any]], Any]) -> CollectorRegistry:
    """What the dashboard's `/metrics` serves: the database's state and this process's runs."""
    return registry([DatabaseCollector(queue, run), *run_metrics().collectors()])


def exposition(reg: CollectorRegistry, accept: str | None = None) -> tuple[bytes, str]:
    """The registry in the format the scraper asked for (its Accept header: OpenMetrics, or the Prometheus
    text format, version 0.0.4 by default), and that format's content type."""
    encode, content_type = choose_encoder(accept or "")
    return encode(reg), content_type


# -- the worker's metrics port ---------------------------------------------------------------------------
class WorkerEndpoints:
    """The WSGI app of `djobs worker --metrics-port`: `/metrics` (this worker's runs), `/healthz` (the
    process answers, draining or not), `/readyz` (the database answers and lists this worker as live).

    Read-only and without job data, so it needs no token; bind it to an address only your scraper reaches.
    """

    def __init__(self, queue: Queue, worker: Any, metrics: RunMetrics) -> None:
        self.queue = queue
        self.worker = worker
        self.registry = registry(metrics.collectors())

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = str(environ.get("PATH_INFO", "")).rstrip("/") or "/"
        method = str(environ.get("REQUEST_METHOD", "GET")).upper()
        ctype = "text/plain; charset=utf-8"
        if method not in ("GET", "HEAD"):
            status, body = "405 Method Not Allowed", b"GET only\n"
        elif path == "/metrics":
            body, ctype = exposition(self.registry, environ.get("HTTP_ACCEPT"))
            status = "200 OK"
        elif path == "/healthz":  # alive while the process answers, draining included: never restart a drain
            status, body = "200 OK", (b"draining\n" if getattr(self.worker, "stopping", False) else b"ok\n")
        elif path == "/readyz":
            problem = self.readiness_problem()
            status, body = ("200 OK", b"ok\n") if problem is None else ("503 Service Unavailable", problem.encode() + b"\n")
        else:
            status, body = "404 Not Found", b"try /metrics, /healthz or /readyz\n"
        start_response(status, [
            ("Content-Type", ctype), ("Content-Length", str(len(body))), ("Cache-Control", "no-store"),
            ("X-Content-Type-Options", "nosniff"),
        ])  # fmt: skip
        return [b"" if method == "HEAD" else body]

    def readiness_problem(self) -> str | None:
        if getattr(self.worker, "stopping", False):
            return "the worker is stopping"
        try:
            live = {w.id for w in self.queue.workers()}
        except Exception as exc:
            return f"the database does not answer: {type(exc).__name__}: {exc}"
        if self.worker.id not in live:
            return f"worker {self.worker.id} is not registered as live in the database"
        return None


def serve_worker_metrics(queue: Queue, worker: Any, metrics: RunMetrics, address: str) -> Any:
    """Serve `WorkerEndpoints` on `address` ("PORT" on loopback, or "HOST:PORT") on a daemon thread;
    returns the server (`.port`, `.close()`)."""
    from djobs.ui.server import Server

    host, port = parse_address(address)
    return Server(WorkerEndpoints(queue, worker, metrics), host, port, threads=2, connections=100).start(
        "djobs-metrics"
    )


def parse_address(address: str) -> tuple[str, int]:
    """"9100" → ("127.0.0.1", 9100); "0.0.0.0:9100" and "[::]:9100" as written. ValueError when bad."""
    text = address.strip()
    host, sep, port = text.rpartition(":")
    if not sep:
        host, port = "127.0.0.1", text
    host = host.strip("[]") or "127.0.0.1"
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"bad metrics address {address!r}: use PORT or HOST:PORT with a port of 0..65535")
    return host, int(port)
