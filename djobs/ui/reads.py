"""The dashboard's read endpoints: overview, job lists (summaries, paged), job detail, workflow tree,
events, throughput, and the operational ones (health, readiness, Prometheus metrics)."""

from __future__ import annotations

import logging
import math
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import djobs
from djobs import metafilter
from djobs.jobs import STATUS_VALUES, Limits
from djobs.ui import workflow as wf
from djobs.ui.http import SECURITY_HEADERS, HTTPError, Request, Response
from djobs.ui.views import PREVIEW, summary

if TYPE_CHECKING:
    from djobs.queue import Queue
    from djobs.ui.app import Dashboard

log = logging.getLogger("djobs.ui")

#: Page size caps: the API serves windows, never whole tables.
MAX_JOBS = 500
MAX_EVENTS = 1000
MAX_OFFSET = 10**9
MAX_EVENT_ID = 2**63 - 1
#: Job detail shows at most this many sub-jobs and the newest this many of the job's events.
DETAIL_SUBS = 200
DETAIL_EVENTS = 100

_STATUSES = set(STATUS_VALUES)


# -- operations ----------------------------------------------------------------------------------------
def healthz(d: Dashboard, req: Request) -> tuple[int, Any]:
    """Liveness: the process answers. Nothing else is checked, so a database outage does not get the
    dashboard restarted (that is what readiness is for)."""
    return 200, {"ok": True}


def readyz(d: Dashboard, req: Request) -> tuple[int, Any]:
    """Readiness: the database answers within a few seconds."""
    try:
        d.db(lambda: d.queue.latest_event_id(), timeout=5.0)
    except djobs.StorageUnavailable as exc:
        return 503, {"ok": False, "problems": [f"the database does not answer: {exc}"]}
    return 200, {"ok": True}


def metrics(d: Dashboard, req: Request) -> Response:
    from djobs.metrics import exposition

    body, content_type = exposition(d.metrics_registry(), req.header("Accept"))
    return 200, [
        ("Content-Type", content_type),
        ("Content-Length", str(len(body))),
        ("Cache-Control", "no-store"),
        *SECURITY_HEADERS,
    ], body


# -- reads ---------------------------------------------------------------------------------------------
def overview(d: Dashboard, req: Request) -> tuple[int, Any]:
    include_dead = req.arg("include_dead") in ("1", "true", "yes")

    def read() -> dict[str, Any]:
        q = d.queue
        return {
            "now": datetime.now(UTC),
            "queues": q.queue_stats(),
            "workers": q.workers(include_dead=include_dead),
            "schedules": q.schedules(),
            "job_types": q.job_types(),
            "latest_event_id": q.latest_event_id(),
            "limits": {name: limits_view(lim, q.held_back(name)) for name, lim in q.all_limits().items()},
        }

    return 200, d.db(read)


def list_jobs(d: Dashboard, req: Request) -> tuple[int, Any]:
    status = req.arg("status")
    if status is not None and status not in _STATUSES:
        raise HTTPError(400, f"unknown status {status[:40]!r}; one of {', '.join(sorted(_STATUSES))}")
    limit = req.int_arg("limit", 50, 1, MAX_JOBS)
    offset = req.int_arg("offset", 0, 0, MAX_OFFSET)
    queue_name, job_type = req.name_arg("queue"), req.name_arg("type")
    try:
        meta = metafilter.parse_all(req.arg("meta") or "") or None
    except (TypeError, ValueError) as exc:
        raise HTTPError(400, str(exc)) from None

    def read() -> dict[str, Any]:
        q = d.queue
        rows = q.job_summaries(
            status=status, queue=queue_name, type=job_type, limit=limit + 1, offset=offset, preview=PREVIEW, meta=meta
        )
        return {
            "jobs": [summary(r) for r in rows[:limit]], "limit": limit, "offset": offset, "has_more": len(rows) > limit,
            "total": q.count_jobs(status=status, queue=queue_name, type=job_type, meta=meta),
        }  # fmt: skip

    return 200, d.db(read)


def job_detail(d: Dashboard, req: Request, job_id: str) -> tuple[int, Any]:
    def read() -> dict[str, Any]:
        q = d.queue
        detail = q.job_detail(job_id, events=DETAIL_EVENTS, sub_jobs=DETAIL_SUBS)
        return {
            "job": detail.job,
            "checkpoints": detail.checkpoints,
            "sub_jobs": [summary(s) for s in detail.sub_jobs],
            "sub_jobs_total": len(detail.sub_jobs) + detail.more_sub_jobs,
            "events": detail.events,
            "why": _why(q, job_id),
        }

    return 200, d.db(read)


def workflow(d: Dashboard, req: Request, job_id: str) -> tuple[int, Any]:
    depth = req.int_arg("depth", wf.MAX_DEPTH, 1, wf.MAX_DEPTH)
    return 200, d.db(lambda: wf.tree(d.queue, job_id, depth=depth))


def events(d: Dashboard, req: Request) -> tuple[int, Any]:
    limit = req.int_arg("limit", 100, 1, MAX_EVENTS)
    after_arg = req.int_arg("after", -1, 0, MAX_EVENT_ID) if req.arg("after") is not None else None
    job_id, queue_name = req.name_arg("job_id"), req.name_arg("queue")

    def read() -> dict[str, Any]:
        q = d.queue
        latest = q.latest_event_id()
        # No cursor yet: the newest events, not the whole log.
        after = max(0, latest - limit) if after_arg is None else after_arg
        evs = q.events_since(after, limit=limit, job_id=job_id, queue=queue_name)
        return {"events": evs, "cursor": evs[-1].id if evs else after, "latest": latest}

    return 200, d.db(read)


def throughput(d: Dashboard, req: Request) -> tuple[int, Any]:
    st = d.stats
    retention = int(math.ceil(st.retention))
    window = min(req.int_arg("window", min(3600, retention), 1, MAX_OFFSET), retention)
    default_bucket = st.base * max(1, math.ceil(window / 60 / st.base))
    bucket = req.int_arg("bucket", default_bucket, 1, MAX_OFFSET)
    bucket = st.base * math.ceil(bucket / st.base)  # whole in-memory buckets only
    if math.ceil(window / bucket) > 1000:
        raise HTTPError(400, f"window / bucket gives over 1000 points; use a bucket of at least {math.ceil(window / 1000)} s")
    only = req.name_arg("queue")

    def read() -> dict[str, Any]:
        with st.lock:
            now = time.time()
            complete = st.refresh(d.queue, now)
            return {**st.series(window, bucket, now, only), "complete": complete}

    return 200, d.db(read)


def limits_view(lim: Limits, held_back: dict[str, int]) -> dict[str, Any]:
    """A queue's limits as the page shows them (rates as "10/s"), with how many due jobs each holds back."""
    return {
        "rate": None if lim.rate is None else str(lim.rate), "running": lim.running,
        "key_rate": None if lim.key_rate is None else str(lim.key_rate), "key_running": lim.key_running,
        "held_back": held_back,
    }  # fmt: skip


def _why(queue: Queue, job_id: str) -> list[str]:
    """The reasons a job is not running, as `djobs why` says them; empty if they cannot be worked out
    (the detail view must not fail because an explanation did)."""
    from djobs.explain import why

    try:
        return why(queue, job_id)
    except djobs.StorageUnavailable:
        raise
    except Exception:
        log.debug("why(%s) failed", job_id, exc_info=True)
        return []
