"""Prometheus metrics, scraped over HTTP and parsed with prometheus_client's own text parser: the
dashboard's database series match the database, run series count what a worker in this process ran, and
a database that does not answer gives `djobs_database_up 0` instead of a failed scrape."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
from browser.support import TIMEOUT, TOKEN, Client, Proxy, wait_for
from prometheus_client.parser import text_string_to_metric_families

import djobs
import djobs.metrics
import djobs.ui
from djobs.metrics import RunMetrics, WorkerEndpoints
from djobs.ui.server import Server

REPO = Path(__file__).resolve().parent.parent


def scrape(c: Client, path: str = "/metrics") -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """{sample name: {sorted label pairs: value}} from one scrape."""
    r = c.get(path)
    assert r.status == 200, (r.status, r.raw[:300])
    assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
    out: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(r.text):
        for sample in family.samples:
            out.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return out


@pytest.fixture
def served(store: Any, queue: djobs.Queue) -> Iterator[Callable[..., Client]]:
    servers: list[tuple[Any, Server]] = []

    def start(app: Any, token: str | None = TOKEN) -> Client:
        srv = Server(app, "127.0.0.1", 0, threads=4).start()
        servers.append((app, srv))
        return Client(srv.port, token=token)

    yield start
    for app, srv in servers:
        if hasattr(app, "close"):
            app.close()
        srv.close()


def test_dashboard_metrics_match_the_database(served: Callable[..., Client], store: Any, queue: djobs.Queue) -> None:
    @queue.handler("ok")
    def ok(args: Any) -> None:
        pass

    @queue.handler("bad", retries=0, queue="other")
    def bad(args: Any) -> None:
        raise djobs.NoRetry("no")

    for _ in range(3):
        queue.enqueue("ok", None)
    queue.enqueue("bad", None)
    later = queue.enqueue("ok", None, delay=3600)
    queue.cancel_job(queue.enqueue("ok", None, delay=3600))
    queue.pause_queue("paused-q")
    w = queue.worker(queues={"default": 3, "other": 1}, poll_interval=0.05)
    w.start()
    try:
        wait_for(lambda: len(queue.list_jobs(status="completed")) == 3 and queue.list_jobs(status="failed"), "jobs run")
        c = served(djobs.ui.Dashboard(store, queue=queue, token=TOKEN))
        m = scrape(c)
        assert m["djobs_database_up"] == {(): 1.0}
        expected = {
            (("queue", q.name), ("status", status)): float(q.counts.get(status, 0))
            for q in queue.queue_stats()
            for status in djobs.jobs.STATUS_VALUES
        }
        assert m["djobs_jobs"] == expected
        assert m["djobs_jobs"][(("queue", "default"), ("status", "completed"))] == 3
        assert m["djobs_jobs"][(("queue", "default"), ("status", "pending"))] == 1  # the delayed one
        assert m["djobs_jobs"][(("queue", "other"), ("status", "failed"))] == 1
        assert m["djobs_queue_paused"][(("queue", "paused-q"),)] == 1 and m["djobs_queue_paused"][(("queue", "default"),)] == 0
        assert m["djobs_workers"] == {(): float(len([x for x in queue.workers() if x.alive]))} == {(): 1.0}
        assert m["djobs_worker_slots"] == {(("queue", "default"),): 3.0, (("queue", "other"),): 1.0}
        assert queue.get_job(later).status == "pending"  # type: ignore[union-attr]
        anonymous = Client(c.port, token=None)
        assert anonymous.get("/metrics").status == 401  # metrics name queues: the token is needed
    finally:
        w.stop(timeout=5)


def test_run_metrics_count_runs_and_durations(served: Callable[..., Client], queue: djobs.Queue) -> None:
    """The observer's series, fed as a worker feeds them, exposed by the worker's metrics endpoint."""
    metrics = RunMetrics()

    @queue.handler("resize")
    def resize(args: Any) -> None:
        pass

    @queue.handler("send", queue="emails")
    def send(args: Any) -> None:
        pass

    a, b = (queue.get_job(queue.enqueue(t, None, delay=3600)) for t in ("resize", "send"))
    for job, outcome, seconds in ((a, "completed", 0.02), (a, "completed", 3.0), (a, "failed", 0.5), (b, "retried", 0.001)):
        metrics.run_started(job)
        metrics.run_finished(job, outcome, seconds)
    metrics.run_started(b)  # still running
    w = queue.worker(queues={"default": 1}, poll_interval=0.05)
    w.start()
    try:
        c = served(WorkerEndpoints(queue, w, metrics), token=None)
        m = scrape(c)
        runs = m["djobs_job_runs_total"]
        assert runs[(("outcome", "completed"), ("queue", "default"), ("type", "resize"))] == 2
        assert runs[(("outcome", "failed"), ("queue", "default"), ("type", "resize"))] == 1
        assert runs[(("outcome", "retried"), ("queue", "emails"), ("type", "send"))] == 1
        count = m["djobs_job_duration_seconds_count"][(("queue", "default"), ("type", "resize"))]
        total = m["djobs_job_duration_seconds_sum"][(("queue", "default"), ("type", "resize"))]
        assert count == 3 and total == pytest.approx(3.52)
        buckets = m["djobs_job_duration_seconds_bucket"]
        assert buckets[(("le", "0.025"), ("queue", "default"), ("type", "resize"))] == 1
        assert buckets[(("le", "5.0"), ("queue", "default"), ("type", "resize"))] == 3
        assert m["djobs_job_runs_in_progress"][(("queue", "emails"), ("type", "send"))] == 1
        assert "djobs_jobs" not in m  # the database's state is the dashboard's to report, once
        assert c.get("/healthz").status == 200
        wait_for(lambda: c.get("/readyz").status == 200, "the worker registered", TIMEOUT)
        assert c.get("/nothing").status == 404 and c.post("/metrics").status == 405
    finally:
        w.stop(timeout=5)
    assert c.get("/readyz").status == 503  # stopped: no longer ready


def test_a_database_that_does_not_answer_gives_up_0(served: Callable[..., Client], pg_url: str) -> None:
    parts = urlsplit(pg_url)
    proxy = Proxy((parts.hostname or "127.0.0.1", parts.port or 5432))
    store = djobs.connect(urlunsplit(parts._replace(netloc=f"{parts.username}@127.0.0.1:{proxy.port}")), connect_timeout=2)
    try:
        q = djobs.Queue(store)
        q.pause_queue("x")
        c = served(djobs.ui.Dashboard(store, queue=q, token=TOKEN))
        assert scrape(c)["djobs_database_up"] == {(): 1.0}
        proxy.stop()
        m = scrape(c)
        assert m["djobs_database_up"] == {(): 0.0} and "djobs_jobs" not in m
        r = c.get("/readyz")
        assert r.status == 503 and "database" in r.json["problems"][0]
        assert c.get("/healthz").status == 200  # alive all the same: a restart would not help
        proxy = Proxy(proxy.target, proxy.port)
        wait_for(lambda: scrape(c)["djobs_database_up"] == {(): 1.0}, "the database back")
        assert c.get("/readyz").status == 200
    finally:
        proxy.stop()
        store.close()


def test_the_grafana_dashboard_queries_only_series_djobs_serves(served: Callable[..., Client], store: Any, queue: djobs.Queue) -> None:
    board = json.loads((REPO / "examples" / "grafana" / "djobs.json").read_text())
    exprs = [t["expr"] for p in board["panels"] for t in p["targets"]]
    exprs += [v["definition"] for v in board["templating"]["list"] if "definition" in v]
    used = {m for e in exprs for m in re.findall(r"\bdjobs_[a-z_]+", e)}
    metrics = djobs.metrics.run_metrics()

    @queue.handler("grafana")
    def grafana(args: Any) -> None:
        pass

    job = queue.get_job(queue.enqueue("grafana", None, delay=3600))
    metrics.run_started(job)
    metrics.run_finished(job, "completed", 0.1)
    text = served(djobs.ui.Dashboard(store, queue=queue, token=TOKEN)).get("/metrics").text
    families = list(text_string_to_metric_families(text))
    served_names = {f.name for f in families} | {s.name for f in families for s in f.samples}
    assert used and used <= served_names, used - served_names
    assert {p["gridPos"]["y"] for p in board["panels"]} and len({p["id"] for p in board["panels"]}) == len(board["panels"])
