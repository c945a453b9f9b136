"""Optional OpenTelemetry tracing (`pip install 'djobs[otel]'`): a PRODUCER span per enqueue, a CONSUMER span
per attempt, a span per durable step actually executed, and the enqueuing request's trace context stored in
the job so its runs join that request's trace.

djobs only uses the OpenTelemetry API and the globally configured tracer provider and propagator: the
application sets up the SDK and its exporters as it would for any instrumentation. The import happens at the
first hook once something in the process has imported opentelemetry, never at `import djobs`. Without opentelemetry installed `on` turns False there, and every hook
after that is skipped by one attribute check at its call site; jobs then store no trace context (NULL). With
the API but no tracer provider set (no SDK, or not configured yet) a span would record nothing and carry
nothing, so while no span is current none is made (a look at the global provider costs a fraction of the
no-op tracer's span); a context that arrives from upstream still passes through the no-op tracer into the
job and on to its run. Otherwise jobs store NULL.

Parent or link: the messaging semantic conventions say a "process" span SHOULD link to the message's creation
context and leave its parent to the instrumentation. A djobs job is work that a request hands off and whose
story belongs to that request (`send the receipt`, `resize the upload`), so each attempt's span is a *child*
of the enqueue span: the run, its retries, its durable steps and what the handler calls show up inside the
request's trace, and a parent-based sampler keeps or drops them with the request. The run span also carries
the link the conventions ask for, so tools that pair PRODUCER and CONSUMER spans by links find the pair. The
price is a trace that stays open as long as the job lives (a retry an hour later lands in the same trace),
which is what one wants when asking "what happened to this request".

Enqueue spans are named `djobs enqueue <type>`, runs `djobs run <type>`, steps `djobs step <name>`; the
attributes follow the messaging conventions (`messaging.system` = "djobs", `messaging.destination.name` =
the queue, `messaging.message.id` = the job id, `messaging.operation.type`, `messaging.batch.message_count`)
plus `djobs.*` ones for what they do not cover (job type, attempt, outcome, step key).
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from djobs.errors import MAX_MESSAGE, error_text, safe_str

if TYPE_CHECKING:
    from djobs.jobs import NewJob
    from djobs.worker.executor import Running

#: False once opentelemetry turned out not to be installed: call sites check it before calling a hook.
on = True
#: What a call site uses in place of a hook's context manager while `on` is False.
OFF = contextlib.nullcontext()

_api: Any = None  # _Otel once loaded
log = logging.getLogger("djobs.tracing")
SYSTEM = "djobs"
#: Outcomes of an attempt that are the job's failure (the span's status is ERROR).
_FAILED = frozenset({"failed", "retried"})


class _Otel:
    """The parts of the OpenTelemetry API the hooks use, imported once."""

    def __init__(self) -> None:
        from opentelemetry import context, propagate, trace

        from djobs import __version__

        self.trace, self.propagate, self.context = trace, propagate, context
        self.tracer = trace.get_tracer("djobs", __version__)
        self.noop_providers = frozenset({trace.ProxyTracerProvider, trace.NoOpTracerProvider})

    def unset(self) -> bool:
        """No tracer provider is set: spans would record nothing. (The exact type: isinstance on these
        abstract classes costs microseconds.)"""
        return type(self.trace.get_tracer_provider()) in self.noop_providers

    def idle(self) -> bool:
        """No tracer provider and no current span: a span would record nothing and carry nothing."""
        return self.unset() and not self.trace.get_current_span().get_span_context().is_valid


def _load() -> _Otel | None:
    """Import opentelemetry once; a missing package turns tracing off for the life of the process. While
    nothing in the process has imported opentelemetry, no tracer provider can have been set and no context
    can have arrived, so there is nothing to trace and the import (tens of milliseconds, paid by every
    `djobs enqueue` from a shell) is not made yet."""
    global _api, on
    if _api is None:
        if "opentelemetry" not in sys.modules:
            return None
        try:
            _api = _Otel()
        except ImportError:
            on = False
            return None
    return _api


@contextlib.contextmanager
def producing(jobs: list[NewJob]) -> Iterator[list[NewJob]]:
    """The PRODUCER span of one enqueue (one span per batch), current while the jobs are written; yields
    the jobs carrying its context. Jobs keep `trace` None when there is nothing to carry (no SDK, or a
    span that is not recording and has no valid context)."""
    api = _load()
    if api is None or api.idle():
        yield jobs
        return
    try:
        span, token, traced = _start_enqueue(api, jobs)
    except Exception:  # a tracing fault never fails an enqueue
        log.exception("could not start an enqueue span")
        yield jobs
        return
    try:
        yield traced
    except Exception as exc:
        with contextlib.suppress(Exception):
            _record_error(span, exc)
        raise
    finally:
        api.context.detach(token)
        try:  # the jobs are written: a fault here must not tell the caller otherwise
            span.end()
        except Exception:
            log.exception("could not end an enqueue span")


def _start_enqueue(api: _Otel, jobs: list[NewJob]) -> tuple[Any, object, list[NewJob]]:
    trace = api.trace
    first = jobs[0]
    attrs: dict[str, Any] = {
        "messaging.system": SYSTEM,
        "messaging.operation.type": "send",
        "messaging.operation.name": "enqueue",
    }
    # A batch names its queue and type only when they hold for every job in it.
    if all(j.queue == first.queue for j in jobs):
        attrs["messaging.destination.name"] = first.queue
    name = "djobs enqueue"
    if all(j.type == first.type for j in jobs):
        attrs["djobs.job.type"] = first.type
        name = f"djobs enqueue {first.type}"
    if len(jobs) == 1:
        attrs["messaging.message.id"] = first.id
    else:
        attrs["messaging.batch.message_count"] = len(jobs)
    span = api.tracer.start_span(name, kind=trace.SpanKind.PRODUCER, attributes=attrs)
    token = api.context.attach(trace.set_span_in_context(span))
    carrier: dict[str, str] = {}
    try:
        api.propagate.inject(carrier)
    except Exception:
        api.context.detach(token)
        span.end()
        raise
    if carrier:
        text = json.dumps(carrier, separators=(",", ":"))
        jobs = [j._replace(trace=text) for j in jobs]
    return span, token, jobs


def carry(jobs: list[NewJob]) -> list[NewJob]:
    """Jobs made inside a run (fan-out sub-jobs) carry the current context: the run's, or its step's."""
    api = _load()
    if api is None or api.idle():
        return jobs
    carrier: dict[str, str] = {}
    api.propagate.inject(carrier)
    if not carrier:
        return jobs
    text = json.dumps(carrier, separators=(",", ":"))
    return [j._replace(trace=text) for j in jobs]


def _extract(trace_text: str | None) -> Any:
    """The context stored with a job, or None (a job from before tracing, or a stored value that is not
    a JSON object: tracing never fails a job)."""
    if not trace_text:
        return None
    try:
        carrier = json.loads(trace_text)
    except ValueError:
        return None
    if not isinstance(carrier, dict):
        return None
    return _api.propagate.extract({str(k): str(v) for k, v in carrier.items()})


def start_run(entry: Running, worker_id: str) -> object | None:
    """Start the CONSUMER span of one attempt and make it current in this thread or task; returns the
    token for `detach` (None when tracing is off). The span is ended by `end_run`, on whichever path the
    attempt ends (returned, raised, time limit, taken away, released at stop)."""
    api = _load()
    if api is None or (not entry.trace and api.unset()):
        return None
    try:
        return _start_run(api, entry, worker_id)
    except Exception:  # a tracing fault never costs a job its run
        log.exception("job %s: could not start its span", entry.job.id)
        entry.span = None
        return None


def _start_run(api: _Otel, entry: Running, worker_id: str) -> object:
    trace = api.trace
    job = entry.job
    parent = _extract(entry.trace)
    links = None
    if parent is not None:
        linked = trace.get_current_span(parent).get_span_context()
        if linked.is_valid:
            links = [trace.Link(linked)]
    entry.span = api.tracer.start_span(
        f"djobs run {job.type}",
        context=parent if parent is not None else api.context.Context(),  # never the slot thread's leftovers
        kind=trace.SpanKind.CONSUMER,
        links=links,
        attributes={
            "messaging.system": SYSTEM,
            "messaging.operation.type": "process",
            "messaging.operation.name": "run",
            "messaging.destination.name": job.queue,
            "messaging.message.id": job.id,
            "messaging.client.id": worker_id,
            "djobs.job.type": job.type,
            "djobs.job.attempt": job.attempt,
        },
        record_exception=False,
        set_status_on_exception=False,
    )
    return api.context.attach(trace.set_span_in_context(entry.span))


def detach(token: object | None) -> None:
    if token is not None:
        _api.context.detach(token)


@contextlib.contextmanager
def running(entry: Running, worker_id: str) -> Iterator[None]:
    """`start_run` for a sync slot thread: the span is current while the handler runs, then this thread
    forgets it (the span itself ends with the attempt's outcome)."""
    token = start_run(entry, worker_id)
    try:
        yield
    finally:
        detach(token)


def end_run(entry: Running, outcome: str, exc: BaseException | None) -> None:
    """End the attempt's span with its outcome (completed, failed, retried, released, waiting, dropped);
    a failure records the exception and sets status ERROR. Ends it once, whoever calls first."""
    span, entry.span = entry.span, None
    if span is None:
        return
    try:  # a tracing fault must never keep the outcome from the database
        span.set_attribute("djobs.outcome", outcome)
        if exc is not None and outcome in _FAILED:
            _record_error(span, exc)
    except Exception:
        log.exception("job %s: could not record its outcome on its span", entry.job.id)
    try:
        span.end()
    except Exception:
        log.exception("job %s: could not end its span", entry.job.id)


def _record_error(span: Any, exc: BaseException) -> None:
    """The exception event, `error.type` and status ERROR (described by the job's one-line error text),
    messages bounded as the stored error is: an exception whose str() raises, or that carries megabytes,
    must not break or bloat its span."""
    message = safe_str(exc)
    if len(message) > MAX_MESSAGE:
        message = message[: MAX_MESSAGE - 1] + "…"
    span.set_attribute("error.type", type(exc).__qualname__)
    try:
        span.record_exception(exc, attributes={"exception.message": message})
    except Exception:  # its traceback could not be formatted: the type and the message still go
        span.add_event("exception", {"exception.type": type(exc).__qualname__, "exception.message": message})
    span.set_status(_api.trace.Status(_api.trace.StatusCode.ERROR, error_text(exc)))


@contextlib.contextmanager
def step(name: str, key: str) -> Iterator[None]:
    """The span of one durable step that runs (a replayed step makes none), a child of the current span.
    The control flow that unwinds a handler (a suspend, a lost claim) is not the step's error."""
    api = _load()
    if api is None or api.idle():
        yield
        return
    try:
        span = api.tracer.start_span(f"djobs step {name}", attributes={"djobs.step.name": name, "djobs.step.key": key[2:]})
        token = api.context.attach(api.trace.set_span_in_context(span))
    except Exception:  # a tracing fault is never the step's failure
        log.exception("could not start the span of step %r", name)
        yield
        return
    try:
        yield
    except Exception as exc:
        with contextlib.suppress(Exception):
            _record_error(span, exc)
        raise
    finally:
        api.context.detach(token)
        try:
            span.end()
        except Exception:
            log.exception("could not end the span of step %r", name)
