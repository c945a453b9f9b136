"""OpenTelemetry tracing with a real SDK and an in-memory exporter: enqueue and run spans joined through the
trace context stored in the job, durable steps as children of their run, failures recorded, every attempt's
span ended (time limit, cancellation); and djobs without opentelemetry (a subprocess that cannot import it)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import threading
import time
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

import djobs
from djobs.jobs import NewJob
from tests.dbsql import sql

_EXPORTER = InMemorySpanExporter()


class _Recorder(SimpleSpanProcessor):
    """Keeps spans only while a test here runs: the provider stays set for the rest of this process's tests
    (OpenTelemetry allows one), whose spans must not pile up in memory."""

    active = False

    def on_end(self, span: ReadableSpan) -> None:
        if self.active:
            super().on_end(span)


class _Faulty(SpanProcessor):
    """A span processor that raises while `where` names the moment ("start" or "end")."""

    where = ""

    def on_start(self, span: Any, parent_context: Any = None) -> None:
        if self.where == "start":
            raise RuntimeError("a broken span processor")

    def on_end(self, span: ReadableSpan) -> None:
        if self.where == "end":
            raise RuntimeError("a broken span processor")


_RECORDER = _Recorder(_EXPORTER)
_FAULTY = _Faulty()
_installed: list[bool] = []


@pytest.fixture
def spans() -> Any:
    """The process's tracer provider exporting into memory while the test runs."""
    if not _installed:
        provider = trace.get_tracer_provider()
        if not isinstance(provider, TracerProvider):
            provider = TracerProvider()
            trace.set_tracer_provider(provider)
        provider.add_span_processor(_RECORDER)
        provider.add_span_processor(_FAULTY)
        _installed.append(True)
    _EXPORTER.clear()
    _RECORDER.active = True
    yield _EXPORTER
    _RECORDER.active = False
    _EXPORTER.clear()


def named(exporter: InMemorySpanExporter, prefix: str) -> list[ReadableSpan]:
    return [s for s in exporter.get_finished_spans() if s.name.startswith(prefix)]


def burst(q: djobs.Queue, **opts: Any) -> None:
    q.worker(queues={"default": 2}, burst=True, scheduler=False, **opts).run()


def stored_trace(store: Any, job_id: str) -> str | None:
    return sql(store, "SELECT trace FROM djobs_jobs WHERE id = ?", (job_id,)).fetchone()[0]


def test_run_span_is_a_child_of_the_enqueue_span_in_the_request_trace(store, spans):
    q = djobs.Queue(store)
    tracer = trace.get_tracer("test")

    @q.handler("mail")
    def mail(args: dict) -> int:
        with tracer.start_as_current_span("smtp"):
            return 1

    with tracer.start_as_current_span("POST /signup") as request:
        job_id = q.enqueue("mail", {"to": "a@b"})
    carried = json.loads(stored_trace(store, job_id) or "{}")
    trace_id = request.get_span_context().trace_id
    assert f"{trace_id:032x}" in carried["traceparent"]

    burst(q)
    (enq,) = named(spans, "djobs enqueue")
    assert enq.name == "djobs enqueue mail" and enq.kind is SpanKind.PRODUCER
    assert enq.parent is not None and enq.parent.span_id == request.get_span_context().span_id
    assert enq.attributes["messaging.system"] == "djobs"
    assert enq.attributes["messaging.destination.name"] == "default"
    assert enq.attributes["messaging.message.id"] == job_id

    (run,) = named(spans, "djobs run")
    assert run.name == "djobs run mail" and run.kind is SpanKind.CONSUMER
    assert run.context.trace_id == trace_id
    assert run.parent is not None and run.parent.span_id == enq.context.span_id
    assert [link.context.span_id for link in run.links] == [enq.context.span_id]
    assert run.attributes["messaging.message.id"] == job_id
    assert run.attributes["djobs.job.attempt"] == 1
    assert run.attributes["djobs.outcome"] == "completed"
    assert run.status.status_code is StatusCode.UNSET
    (smtp,) = named(spans, "smtp")
    assert smtp.parent is not None and smtp.parent.span_id == run.context.span_id


def test_an_async_handler_runs_inside_its_run_span(store, spans):
    q = djobs.Queue(store)

    @q.handler("fetch")
    async def fetch(args: Any) -> str:
        with trace.get_tracer("test").start_as_current_span("GET /thing"):
            return "ok"

    job_id = q.enqueue("fetch")
    burst(q)
    assert q.result(job_id, timeout=10) == "ok"
    (run,) = named(spans, "djobs run fetch")
    (inner,) = named(spans, "GET /thing")
    assert inner.parent is not None and inner.parent.span_id == run.context.span_id
    assert run.attributes["djobs.outcome"] == "completed"


def test_enqueue_many_is_one_span_and_every_job_carries_it(store, spans):
    q = djobs.Queue(store)
    q.register("n", lambda args: args)
    with trace.get_tracer("test").start_as_current_span("batch request"):
        ids = q.enqueue_many([djobs.Sub("n", i) for i in range(3)])
    (enq,) = named(spans, "djobs enqueue")
    assert enq.name == "djobs enqueue n" and enq.attributes["messaging.batch.message_count"] == 3
    assert "messaging.message.id" not in enq.attributes
    assert {stored_trace(store, i) for i in ids} == {stored_trace(store, ids[0])}
    burst(q)
    runs = named(spans, "djobs run")
    assert sorted(r.attributes["messaging.message.id"] for r in runs) == sorted(ids)
    assert {r.parent.span_id for r in runs if r.parent} == {enq.context.span_id}


def test_a_mixed_batch_names_neither_type_nor_queue(store, spans):
    q = djobs.Queue(store)
    q.register("a", lambda args: args)
    q.register("b", lambda args: args, queue="other")
    q.enqueue_many([djobs.Sub("a"), djobs.Sub("b")])
    (enq,) = named(spans, "djobs enqueue")
    assert enq.name == "djobs enqueue"
    assert "djobs.job.type" not in enq.attributes and "messaging.destination.name" not in enq.attributes


def test_a_job_enqueued_outside_any_span_still_gets_a_linked_run(store, spans):
    q = djobs.Queue(store)
    q.register("n", lambda args: args)
    job_id = q.enqueue("n", 1)  # the enqueue span is the root of its own trace
    assert stored_trace(store, job_id) is not None
    burst(q)
    (enq,) = named(spans, "djobs enqueue")
    (run,) = named(spans, "djobs run")
    assert enq.parent is None and run.context.trace_id == enq.context.trace_id


def test_durable_steps_are_children_of_their_run_and_replays_make_none(store, spans):
    q = djobs.Queue(store)
    q.register("fetch", lambda args: args * 2)

    @q.handler("flow", retries=2, backoff=djobs.Backoff(initial=0, maximum=0, jitter=0))
    def flow(ctx: djobs.Context, args: Any) -> int:
        a = ctx.call("fetch", 1)
        if ctx.job.attempt == 1:
            raise RuntimeError("flaky after the first step")
        return a + ctx.call("fetch", 2)

    job_id = q.enqueue("flow")
    burst(q)
    assert q.result(job_id, timeout=10) == 6
    runs = sorted(named(spans, "djobs run"), key=lambda s: s.attributes["djobs.job.attempt"])
    assert [r.attributes["djobs.outcome"] for r in runs] == ["retried", "completed"]
    steps = named(spans, "djobs step fetch")
    # Step #0 ran on attempt 1 and was replayed on attempt 2; step #1 ran on attempt 2.
    assert [(s.parent.span_id, s.attributes["djobs.step.key"]) for s in steps if s.parent] == [
        (runs[0].context.span_id, "0"),
        (runs[1].context.span_id, "1"),
    ]
    failed = runs[0]
    assert failed.status.status_code is StatusCode.ERROR
    assert failed.attributes["error.type"] == "RuntimeError"
    (event,) = [e for e in failed.events if e.name == "exception"]
    assert event.attributes["exception.message"] == "flaky after the first step"


def test_fan_out_sub_jobs_run_inside_their_parents_trace(store, spans):
    q = djobs.Queue(store)
    q.register("item", lambda args: args * 10)

    @q.handler("parent")
    def parent(ctx: djobs.Context, args: Any) -> list:
        return djobs.values(ctx.fan_out([djobs.Sub("item", n) for n in range(2)], strategy=djobs.COLLECT_ALL))

    with trace.get_tracer("test").start_as_current_span("request") as request:
        job_id = q.enqueue("parent")
    burst(q)
    assert q.result(job_id, timeout=10) == [0, 10]
    runs = named(spans, "djobs run")
    parents = sorted(named(spans, "djobs run parent"), key=lambda s: s.start_time or 0)
    items = named(spans, "djobs run item")
    assert len(items) == 2 and [p.attributes["djobs.outcome"] for p in parents] == ["waiting", "completed"]
    assert {r.context.trace_id for r in runs} == {request.get_span_context().trace_id}
    # The sub-jobs were made while the parent's first run span was current.
    assert {i.parent.span_id for i in items if i.parent} == {parents[0].context.span_id}


def test_a_failing_step_records_its_exception(store, spans):
    q = djobs.Queue(store)

    @q.handler("boom")
    def boom(args: Any) -> None:
        raise ValueError("no such account")

    @q.handler("outer", retries=0)
    def outer(ctx: djobs.Context, args: Any) -> None:
        ctx.call("boom")

    job_id = q.enqueue("outer")
    burst(q)
    assert q.get_job(job_id).status == djobs.JobStatus.FAILED
    (step,) = named(spans, "djobs step boom")
    assert step.status.status_code is StatusCode.ERROR
    assert step.attributes["error.type"] == "ValueError"
    (run,) = named(spans, "djobs run")
    assert run.attributes["djobs.outcome"] == "failed" and run.status.status_code is StatusCode.ERROR


def test_an_exception_whose_str_raises_still_fails_its_job_and_marks_its_span(store, spans):
    class Unprintable(Exception):
        def __str__(self) -> str:
            raise RuntimeError("str() blew up")

    q = djobs.Queue(store)

    @q.handler("odd", retries=0)
    def odd(args: Any) -> None:
        raise Unprintable()

    @q.handler("huge", retries=0)
    def huge(args: Any) -> None:
        raise ValueError("x" * 1_000_000)

    ids = [q.enqueue("odd"), q.enqueue("huge")]
    burst(q)
    assert [q.get_job(i).status for i in ids] == [djobs.JobStatus.FAILED] * 2
    by_type = {s.attributes["djobs.job.type"]: s for s in named(spans, "djobs run")}
    assert by_type["odd"].attributes["error.type"].endswith("Unprintable")
    for span in by_type.values():
        assert span.status.status_code is StatusCode.ERROR and span.attributes["djobs.outcome"] == "failed"
        (event,) = [e for e in span.events if e.name == "exception"]
        assert len(event.attributes["exception.message"]) <= 5000
    assert by_type["huge"].status.description.startswith("ValueError: xxx")


def test_the_span_ends_at_the_time_limit_even_when_the_handler_ignores_it(store, spans):
    q = djobs.Queue(store)
    release = threading.Event()

    @q.handler("stuck", retries=0, timeout=0.2)
    def stuck(args: Any) -> None:
        release.wait(10)  # ignores ctx.cancelled: its thread is abandoned at the deadline

    job_id = q.enqueue("stuck")
    try:
        burst(q)
        (run,) = named(spans, "djobs run")
        assert run.attributes["djobs.outcome"] == "failed"
        assert run.attributes["error.type"] == "JobTimeout"
        assert q.get_job(job_id).status == djobs.JobStatus.FAILED
    finally:
        release.set()


def test_the_span_ends_when_the_job_is_cancelled(store, spans):
    q = djobs.Queue(store)
    started = threading.Event()

    @q.handler("long")
    def long(ctx: djobs.Context, args: Any) -> None:
        started.set()
        ctx.wait_cancelled(10)
        ctx.raise_if_cancelled()

    job_id = q.enqueue("long")
    w = q.worker(queues={"default": 1}, scheduler=False)
    t = threading.Thread(target=w.run, daemon=True)
    t.start()
    try:
        assert started.wait(10)
        q.cancel_job(job_id)
        deadline = time.monotonic() + 10
        while not named(spans, "djobs run") and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        w.stop()
        t.join(10)
    (run,) = named(spans, "djobs run")
    assert run.end_time is not None
    assert run.attributes["djobs.outcome"] == "released"
    assert run.status.status_code is StatusCode.UNSET  # being cancelled is not the job's error


def test_the_span_ends_when_a_stopping_worker_gives_up_on_a_handler(store, spans):
    q = djobs.Queue(store)
    started, release = threading.Event(), threading.Event()

    @q.handler("deaf")
    def deaf(args: Any) -> None:
        started.set()
        release.wait(10)  # ignores the cancellation a stopping worker sends

    q.enqueue("deaf")
    w = q.worker(queues={"default": 1}, scheduler=False, drain_timeout=0.2)
    t = threading.Thread(target=w.run, daemon=True)
    t.start()
    try:
        assert started.wait(10)
        w.stop()
        t.join(10)
        (run,) = named(spans, "djobs run deaf")
        assert run.attributes["djobs.outcome"] == "released"
    finally:
        release.set()


@pytest.mark.parametrize("where", ["start", "end"])
def test_a_broken_span_processor_never_fails_an_enqueue_nor_costs_a_job_its_run(store, spans, where):
    q = djobs.Queue(store)
    q.register("n", lambda args: args + 1)
    q.register("flow", lambda ctx, args: ctx.call("n", args))
    _FAULTY.where = where
    try:
        job_ids = [q.enqueue("n", 1), *q.enqueue_many([djobs.Sub("n", 2), djobs.Sub("flow", 3)])]
        burst(q)
    finally:
        _FAULTY.where = ""
    assert [q.result(i, timeout=10) for i in job_ids] == [2, 3, 4]


def test_an_unreadable_stored_context_runs_as_a_new_trace(store, spans):
    q = djobs.Queue(store)
    q.register("n", lambda args: args)
    store.insert_jobs([NewJob(djobs.jobs.new_id(), "n", "default", "1", 0, 0, trace="not json")])
    burst(q)
    (run,) = named(spans, "djobs run")
    assert run.parent is None and not run.links
    assert run.attributes["djobs.outcome"] == "completed"


_WITHOUT = """
import sys
{guard}
import djobs
from djobs import tracing

store = djobs.connect(sys.argv[1])
q = djobs.Queue(store)
q.register("n", lambda args: args + 1)
q.register("outer", lambda ctx, args: ctx.call("n", args))
ids = [q.enqueue("n", 1), *q.enqueue_many([djobs.Sub("n", 2), djobs.Sub("outer", 3)])]
q.worker(queues={{"default": 2}}, burst=True, scheduler=False).run()
print([q.result(i, timeout=10) for i in ids], tracing.on, "opentelemetry.sdk" in sys.modules)
traces = store.db.execute_sql("SELECT COUNT(*) FROM djobs_jobs WHERE trace IS NOT NULL").fetchone()[0]
print(traces)
if tracing.on:  # a context from upstream passes through the API alone into the job
    from opentelemetry import context, propagate

    token = context.attach(propagate.extract({{"traceparent": "{tp}"}}))
    job_id = q.enqueue("n", 5)
    context.detach(token)
    print(store.db.execute_sql(store.dialect.render("SELECT trace FROM djobs_jobs WHERE id = ?"), (job_id,)).fetchone()[0])
"""
_UPSTREAM = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


@pytest.mark.parametrize("mode", ["absent", "api-only"])
def test_without_opentelemetry_or_without_an_sdk_jobs_store_no_context(db_url, mode):
    # "absent": the import of opentelemetry fails as it does where the package is not installed.
    guard = "sys.modules['opentelemetry'] = None" if mode == "absent" else ""
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(_WITHOUT.format(guard=guard, tp=_UPSTREAM)), db_url],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    results, counted, *passed = out.stdout.strip().splitlines()
    on = "False" if mode == "absent" else "True"
    assert results == f"[2, 3, 4] {on} False"
    assert counted == "0"
    if mode == "api-only":
        assert json.loads(passed[0]) == {"traceparent": _UPSTREAM}
    else:
        assert passed == []
