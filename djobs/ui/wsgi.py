"""The dashboard as a WSGI application: routing, the JSON API, error mapping, throughput stats.

    app = djobs.ui.app(store, queue=queue)     # mount it anywhere; it reads SCRIPT_NAME

WSGI (not ASGI) because it needs nothing beyond the standard library and every Python web stack can mount
it: `wsgiref`, gunicorn, waitress, Flask/Django dispatchers, or an ASGI server through an adapter.

Every database call runs on a small private thread pool. Peewee binds one connection per thread, so a
server that starts a thread per request would otherwise open (and, with the PostgreSQL pool, never hand
back) a connection per request; the pool bounds the dashboard to `DB_THREADS` connections whatever the
server does, and keeps a busy dashboard from starving workers that share the store.

Only the public library API is used (`djobs.Queue` and its methods), so the dashboard works against any
database the library can open.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import math
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from importlib import resources
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import parse_qs

import djobs
from djobs.codec import jsonable

if TYPE_CHECKING:
    from djobs.queue import Queue
    from djobs.storage import PeeweeStorage

log = logging.getLogger("djobs.ui")

T = TypeVar("T")
StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]
Middleware = Callable[[WSGIApp], WSGIApp]

#: Threads (hence at most this many database connections) the dashboard uses for its reads and actions.
DB_THREADS = 4
#: Largest request body accepted (enqueue args); a dashboard has no business posting more.
MAX_BODY = 1 << 20
#: Page size caps: the API serves windows, never whole tables.
MAX_JOBS = 500
MAX_EVENTS = 1000
#: Job detail shows at most this many sub-jobs and the newest this many of the job's events.
DETAIL_SUBS = 200
DETAIL_EVENTS = 100

_STATUSES = {s.value for s in djobs.JobStatus}
_ENQUEUE_KEYS = {"type", "args", "queue", "priority", "delay", "unique", "retries", "at"}


class HTTPError(Exception):
    """An error answered as `{"error": message}` with this status (and extra JSON fields)."""

    def __init__(self, status: int, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.extra = extra


_REASONS = {
    200: "OK", 201: "Created", 204: "No Content", 301: "Moved Permanently", 400: "Bad Request",
    403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed", 409: "Conflict",
    413: "Content Too Large", 500: "Internal Server Error", 503: "Service Unavailable",
}  # fmt: skip


def _status_line(code: int) -> str:
    return f"{code} {_REASONS.get(code, 'Unknown')}"


# -- JSON --------------------------------------------------------------------------------------------------
def plain(value: Any) -> Any:
    """A JSON-ready copy (the library's one conversion of records)."""
    return jsonable(value)


def _json_bytes(payload: Any) -> bytes:
    return json.dumps(plain(payload), ensure_ascii=False, separators=(",", ":")).encode("utf-8")


# -- throughput stats --------------------------------------------------------------------------------------
#: Event-log kinds counted by the throughput chart, and the names the API gives them.
STAT_KINDS = {
    "job_started": "started",
    "job_completed": "completed",
    "job_failed": "failed",
    "job_retrying": "retried",
    "job_cancelled": "cancelled",
}
_KIND_NAMES = list(STAT_KINDS.values())
_KIND_INDEX = {k: i for i, k in enumerate(STAT_KINDS)}


def _base_bucket(retention: float) -> int:
    """The finest bucket kept in memory: 60 s for the default week, finer for short retentions so a
    retention of a few seconds still means something."""
    for size in (60, 30, 10, 5):
        if retention >= size * 100:
            return size
    return 1


class Throughput:
    """Per-queue counts of job outcomes in fixed time buckets, read incrementally from the event log.

    The first refresh looks back at most `initial_scan` events (and never before the retention horizon);
    later refreshes read only events newer than the cursor, plus a short window behind it, because an
    event id allocated before a slow commit can become visible after larger ids (as `follow_events` does).
    Buckets older than the retention are dropped, so memory is bounded by retention / bucket × queues.
    """

    PAGE = 1000
    LATE_WINDOW = 200

    def __init__(self, retention: float, max_read: int = 20_000, initial_scan: int = 200_000) -> None:
        self.retention = retention
        self.base = _base_bucket(retention)
        self.max_read = max_read
        self.initial_scan = initial_scan
        self.counts: dict[tuple[str, int], list[int]] = {}
        self.cursor: int | None = None
        self.first_id = 0  # events at or below this id were never looked at (initial_scan)
        self.seen: set[int] = set()
        self.covered_from: float | None = None
        self.lock = threading.Lock()

    def refresh(self, queue: Queue, now: float) -> bool:
        """Read new events; True when the cursor has reached the newest event (False: still catching up
        on a big log, `max_read` events at a time)."""
        horizon = now - self.retention
        since = datetime.fromtimestamp(horizon, UTC)
        latest = queue.latest_event_id()
        if self.cursor is not None and latest < self.cursor - self.LATE_WINDOW:
            self.cursor = None  # the log was emptied or replaced (a fresh database): start again
            self.counts.clear()
            self.seen.clear()
        if self.cursor is None:
            self.cursor = self.first_id = max(0, latest - self.initial_scan)
            self.covered_from = horizon if self.cursor == 0 else None
        low = max(self.first_id, self.cursor - self.LATE_WINDOW)
        if low < self.cursor:  # ids at or below the cursor that committed after the last read
            late = queue.events_since(low, limit=self.LATE_WINDOW, since=since)
            self._count([ev for ev in late if ev.id <= self.cursor], horizon)
        read = 0
        while read < self.max_read:
            limit = min(self.PAGE, self.max_read - read)
            page = queue.events_since(self.cursor, limit=limit, since=since)
            self._count(page, horizon)
            read += len(page)
            if page:
                self.cursor = max(self.cursor, page[-1].id)
            if len(page) < limit:
                # Everything up to `latest` has been seen (or is older than the horizon): jump there, so
                # the next read does not walk old rows the `since` filter skips.
                self.cursor = max(self.cursor, latest)
                break
        floor = self.cursor - self.LATE_WINDOW
        self.seen = {i for i in self.seen if i > floor}
        for key in [k for k in self.counts if k[1] + self.base <= horizon]:
            del self.counts[key]
        if self.covered_from is not None:
            self.covered_from = max(self.covered_from, horizon)
        return self.cursor >= latest

    def _count(self, events: Sequence[Any], horizon: float) -> None:
        for ev in events:
            if ev.id in self.seen:
                continue
            self.seen.add(ev.id)
            ts = ev.timestamp.timestamp()
            if self.covered_from is None:
                self.covered_from = ts
            idx = _KIND_INDEX.get(ev.kind)
            if idx is None or ts < horizon:
                continue
            key = (ev.queue or "", int(ts // self.base) * self.base)
            row = self.counts.get(key)
            if row is None:
                row = self.counts[key] = [0] * len(STAT_KINDS)
            row[idx] += 1

    def series(self, window: float, bucket: int, now: float, only_queue: str | None) -> dict[str, Any]:
        """Dense per-queue series of `window` seconds in `bucket`-second steps, newest bucket last."""
        points = math.ceil(window / bucket)
        end = (int(now // bucket) + 1) * bucket
        begin = end - points * bucket
        per_queue: dict[str, list[list[int]]] = {}
        for (qname, ts), row in self.counts.items():
            if ts < begin or (only_queue is not None and qname != only_queue):
                continue
            rows = per_queue.setdefault(qname, [[0] * len(STAT_KINDS) for _ in range(points)])
            slot = rows[(ts - begin) // bucket]
            for i, n in enumerate(row):
                slot[i] += n
        queues: dict[str, Any] = {}
        for qname in sorted(per_queue):
            rows = per_queue[qname]
            totals = [sum(r[i] for r in rows) for i in range(len(STAT_KINDS))]
            queues[qname] = {
                "totals": dict(zip(_KIND_NAMES, totals, strict=True)),
                "series": [
                    {"t": _iso(begin + i * bucket), **dict(zip(_KIND_NAMES, r, strict=True))}
                    for i, r in enumerate(rows)
                ],
            }
        return {
            "kinds": _KIND_NAMES,
            "bucket_seconds": bucket,
            "window_seconds": window,
            "retention_seconds": self.retention,
            "from": _iso(begin),
            "to": _iso(end),
            "covered_from": _iso(self.covered_from) if self.covered_from is not None else None,
            "queues": queues,
        }


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat()


# -- request helpers ---------------------------------------------------------------------------------------
class Request:
    """The parts of a WSGI environ the API reads."""

    def __init__(self, environ: dict[str, Any]) -> None:
        self.environ = environ
        self.method = str(environ.get("REQUEST_METHOD", "GET")).upper()
        raw = str(environ.get("PATH_INFO", ""))
        # WSGI hands the path over as latin-1 decoded bytes; names may be UTF-8.
        self.path = raw.encode("latin-1", "replace").decode("utf-8", "replace")
        self.script_name = str(environ.get("SCRIPT_NAME", ""))
        self.query = {k: v[-1] for k, v in parse_qs(str(environ.get("QUERY_STRING", "")), keep_blank_values=True).items()}
        self._body: Any = None
        self._body_read = False

    def arg(self, name: str) -> str | None:
        value = self.query.get(name)
        return value if value not in (None, "") else None

    def int_arg(self, name: str, default: int, low: int, high: int | None = None) -> int:
        text = self.arg(name)
        if text is None:
            return default
        try:
            value = int(text)
        except ValueError:
            raise HTTPError(400, f"{name} must be an integer, got {text!r}") from None
        if value < low or (high is not None and value > high):
            bound = f"between {low} and {high}" if high is not None else f"at least {low}"
            raise HTTPError(400, f"{name} must be {bound}, got {value}")
        return value

    def json(self) -> Any:
        """The request body as JSON (None when empty)."""
        if self._body_read:
            return self._body
        self._body_read = True
        try:
            length = int(self.environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            raise HTTPError(400, "bad Content-Length") from None
        if length > MAX_BODY:
            raise HTTPError(413, f"request body over {MAX_BODY} bytes")
        data = self.environ["wsgi.input"].read(length) if length > 0 else b""
        if not data.strip():
            return None
        try:
            self._body = json.loads(data)
        except (ValueError, UnicodeDecodeError) as exc:
            raise HTTPError(400, f"bad JSON body: {exc}") from None
        return self._body

    def option(self, name: str) -> str | None:
        """An action option from the query string or, failing that, the JSON body."""
        value = self.arg(name)
        if value is not None:
            return value
        body = self.json()
        if isinstance(body, dict) and body.get(name) not in (None, ""):
            return str(body[name])
        return None

    def reason(self, verb: str) -> str:
        """The reason stored with a pause or cancel: the caller's, else who did it from where."""
        given = self.option("reason")
        if given:
            return given
        user = self.environ.get("REMOTE_USER")
        return f"{verb} from the web UI" + (f" by {user}" if user else "")


# -- the application ---------------------------------------------------------------------------------------
Route = tuple[str, re.Pattern[str], Callable[..., Any]]


class Dashboard:
    """The WSGI callable. Build it with `djobs.ui.app(...)`, which also applies middleware."""

    def __init__(
        self,
        store: PeeweeStorage,
        queue: Queue | None = None,
        stats_retention: timedelta | float = timedelta(days=7),
    ) -> None:
        retention = stats_retention.total_seconds() if isinstance(stats_retention, timedelta) else float(stats_retention)
        if retention <= 0:
            raise ValueError("stats_retention must be positive")
        self.store = store
        self._queue = queue
        self._queue_lock = threading.Lock()
        self.stats = Throughput(retention)
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()
        self.routes: list[Route] = []
        get, post = "GET", "POST"
        for method, pattern, fn in (
            (get, r"api/overview", self.overview),
            (get, r"api/jobs", self.list_jobs),
            (post, r"api/jobs", self.enqueue),
            (get, r"api/jobs/(?P<job_id>[^/]+)", self.job_detail),
            (post, r"api/jobs/(?P<job_id>[^/]+)/(?P<action>cancel|retry|pause|resume)", self.job_action),
            (get, r"api/events", self.events),
            (get, r"api/stats", self.throughput),
            (post, r"api/queues/(?P<name>.+)/(?P<action>pause|resume)", self.queue_action),
            (post, r"api/workers/(?P<worker_id>.+)/(?P<action>pause|resume)", self.worker_action),
            (post, r"api/schedules/(?P<name>.+)/(?P<action>pause|resume)", self.schedule_action),
        ):
            self.routes.append((method, re.compile(pattern + r"/?\Z"), fn))

    # -- plumbing ----------------------------------------------------------------------------------------
    @property
    def queue(self) -> Queue:
        """The Queue to use; made on first use when none was given, so building the app never touches
        the database (a dashboard may start while the database is away)."""
        if self._queue is None:
            with self._queue_lock:
                if self._queue is None:
                    self._queue = djobs.Queue(self.store)
        return self._queue

    def _db(self, fn: Callable[[], T]) -> T:
        """Run fn on the dashboard's own threads (see the module docstring for why)."""
        if self._pool is None:
            with self._pool_lock:
                if self._pool is None:
                    self._pool = ThreadPoolExecutor(DB_THREADS, thread_name_prefix="djobs-ui")
        return self._pool.submit(fn).result()

    def close(self) -> None:
        """Stop the database threads (they hold one connection each). Optional in a server, whose idle
        threads end with the interpreter; call it when a long-lived process drops a dashboard."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        req = Request(environ)
        try:
            status, headers, body = self._dispatch(req)
        except HTTPError as exc:
            status, headers, body = self._error(exc.status, exc.message, **exc.extra)
            if "allow" in exc.extra:
                headers.append(("Allow", ", ".join(exc.extra["allow"])))
        except djobs.StorageUnavailable as exc:
            status, headers, body = self._error(503, str(exc))
            headers.append(("Retry-After", "2"))
        except djobs.DuplicateJob as exc:
            status, headers, body = self._error(409, str(exc), existing_id=exc.existing_id)
        except djobs.JobNotFound as exc:
            status, headers, body = self._error(404, str(exc))
        except (djobs.UnknownJobType, djobs.ConfigError) as exc:
            status, headers, body = self._error(400, str(exc))
        except Exception as exc:  # a dashboard bug must answer, not drop the connection
            log.exception("djobs.ui: %s %s failed", req.method, req.path)
            status, headers, body = self._error(500, f"internal error: {type(exc).__name__}: {exc}")
        if req.method == "HEAD":
            body = b""
        start_response(_status_line(status), headers)
        return [body]

    def _error(self, status: int, message: str, **extra: Any) -> tuple[int, list[tuple[str, str]], bytes]:
        return self._json(status, {"error": message, **extra})

    def _json(self, status: int, payload: Any) -> tuple[int, list[tuple[str, str]], bytes]:
        body = _json_bytes(payload)
        return status, [
            ("Content-Type", "application/json; charset=utf-8"),
            ("Content-Length", str(len(body))),
            ("Cache-Control", "no-store"),
            ("X-Content-Type-Options", "nosniff"),
        ], body

    def _dispatch(self, req: Request) -> tuple[int, list[tuple[str, str]], bytes]:
        path = req.path
        if path == "":
            # Relative links only resolve under the mount point when the page URL ends in "/".
            location = (req.script_name or "") + "/"
            qs = req.environ.get("QUERY_STRING")
            return 301, [("Location", location + (f"?{qs}" if qs else "")), ("Content-Length", "0")], b""
        rel = path[1:] if path.startswith("/") else path
        method = "GET" if req.method == "HEAD" else req.method
        if rel in ("", "index.html"):
            if method != "GET":
                raise HTTPError(405, f"{req.method} not allowed here", allow=["GET"])
            return self._index()
        if method == "POST":
            self._check_origin(req)
        allowed: list[str] = []
        for route_method, pattern, fn in self.routes:
            m = pattern.match(rel)
            if m is None:
                continue
            if route_method != method:
                allowed.append(route_method)
                continue
            status, payload = fn(req, **m.groupdict())
            return self._json(status, payload)
        if allowed:
            raise HTTPError(405, f"{req.method} not allowed on {rel}", allow=allowed)
        raise HTTPError(404, f"no such page: {rel}")

    def _check_origin(self, req: Request) -> None:
        """Refuse cross-site POSTs: a page elsewhere must not be able to cancel jobs through a signed-in
        browser. Browsers send Origin with every POST; scripts (curl) send none and pass."""
        origin = req.environ.get("HTTP_ORIGIN")
        if not origin or origin == "null":
            return
        hosts = {
            req.environ.get("HTTP_HOST") or req.environ.get("SERVER_NAME", ""),
            # Behind a reverse proxy that rewrites Host, the browser's origin is the forwarded host.
            *(h.strip() for h in str(req.environ.get("HTTP_X_FORWARDED_HOST", "")).split(",") if h.strip()),
        }
        if origin.split("://", 1)[-1].rstrip("/") not in hosts:
            raise HTTPError(403, f"cross-origin request from {origin} refused")

    def _index(self) -> tuple[int, list[tuple[str, str]], bytes]:
        page, script_hash = _page()
        return 200, [
            ("Content-Type", "text/html; charset=utf-8"),
            ("Content-Length", str(len(page))),
            ("Cache-Control", "no-cache"),
            ("X-Content-Type-Options", "nosniff"),
            ("Referrer-Policy", "same-origin"),
            (
                "Content-Security-Policy",
                f"default-src 'none'; script-src 'sha256-{script_hash}'; style-src 'unsafe-inline'; "
                "connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'self'",
            ),
        ], page

    # -- reads -------------------------------------------------------------------------------------------
    def overview(self, req: Request) -> tuple[int, Any]:
        include_dead = req.arg("include_dead") in ("1", "true", "yes")

        def read() -> dict[str, Any]:
            q = self.queue
            return {
                "now": datetime.now(UTC),
                "queues": q.queue_stats(),
                "workers": q.workers(include_dead=include_dead),
                "schedules": q.schedules(),
                "job_types": q.job_types(),
                "latest_event_id": q.latest_event_id(),
            }

        return 200, self._db(read)

    def list_jobs(self, req: Request) -> tuple[int, Any]:
        status = req.arg("status")
        if status is not None and status not in _STATUSES:
            raise HTTPError(400, f"unknown status {status!r}; one of {', '.join(sorted(_STATUSES))}")
        limit = req.int_arg("limit", 50, 1, MAX_JOBS)
        offset = req.int_arg("offset", 0, 0)
        queue_name, job_type = req.arg("queue"), req.arg("type")
        jobs = self._db(
            lambda: self.queue.list_jobs(status=status, queue=queue_name, type=job_type, limit=limit + 1, offset=offset)
        )
        return 200, {"jobs": jobs[:limit], "limit": limit, "offset": offset, "has_more": len(jobs) > limit}

    def job_detail(self, req: Request, job_id: str) -> tuple[int, Any]:
        def read() -> dict[str, Any]:
            q = self.queue
            job = q.get_job(job_id)
            if job is None:
                raise djobs.JobNotFound(job_id)
            subs = q.sub_jobs(job_id)
            recent: deque[Any] = deque(maxlen=DETAIL_EVENTS)
            cursor = 0
            for _ in range(20):  # the newest events of a chatty job, without reading unbounded history
                page = q.events_since(cursor, limit=500, job_id=job_id)
                recent.extend(page)
                if len(page) < 500:
                    break
                cursor = page[-1].id
            return {
                "job": job,
                "checkpoints": q.checkpoints(job_id),
                "sub_jobs": subs[:DETAIL_SUBS],
                "sub_jobs_total": len(subs),
                "events": list(recent),
                "why": _why(q, job_id),
            }

        return 200, self._db(read)

    def events(self, req: Request) -> tuple[int, Any]:
        limit = req.int_arg("limit", 100, 1, MAX_EVENTS)
        after_arg = req.int_arg("after", -1, 0) if req.arg("after") is not None else None
        job_id, queue_name = req.arg("job_id"), req.arg("queue")

        def read() -> dict[str, Any]:
            q = self.queue
            latest = q.latest_event_id()
            # No cursor yet: the newest events, not the whole log.
            after = max(0, latest - limit) if after_arg is None else after_arg
            evs = q.events_since(after, limit=limit, job_id=job_id, queue=queue_name)
            return {"events": evs, "cursor": evs[-1].id if evs else after, "latest": latest}

        return 200, self._db(read)

    def throughput(self, req: Request) -> tuple[int, Any]:
        st = self.stats
        retention = int(math.ceil(st.retention))
        window = min(req.int_arg("window", min(3600, retention), 1), retention)
        default_bucket = st.base * max(1, math.ceil(window / 60 / st.base))
        bucket = req.int_arg("bucket", default_bucket, 1)
        bucket = st.base * math.ceil(bucket / st.base)  # whole in-memory buckets only
        if math.ceil(window / bucket) > 1000:
            raise HTTPError(400, f"window / bucket gives over 1000 points; use a bucket of at least {math.ceil(window / 1000)} s")
        only = req.arg("queue")

        def read() -> dict[str, Any]:
            with st.lock:
                now = time.time()
                complete = st.refresh(self.queue, now)
                return {**st.series(window, bucket, now, only), "complete": complete}

        return 200, self._db(read)

    # -- actions -----------------------------------------------------------------------------------------
    def job_action(self, req: Request, job_id: str, action: str) -> tuple[int, Any]:
        mode_text = req.option("mode") if action == "pause" else None
        try:
            mode = djobs.PauseMode(mode_text or "graceful")
        except ValueError:
            raise HTTPError(400, f"mode must be graceful or aggressive, got {mode_text!r}") from None
        reason = req.reason("cancelled" if action == "cancel" else "paused") if action in ("cancel", "pause") else None

        def act() -> tuple[bool, Any]:
            q = self.queue
            if action == "cancel":
                done = q.cancel_job(job_id, reason=reason)
            elif action == "retry":
                done = q.retry_job(job_id)
            elif action == "pause":
                done = q.pause_job(job_id, mode=mode, reason=reason)
            else:
                done = q.resume_job(job_id)
            return done, q.get_job(job_id)

        done, job = self._db(act)
        if not done:
            status = job.status.value if job is not None else "gone"
            need = {
                "cancel": "only unfinished jobs can be cancelled",
                "retry": "only failed or cancelled jobs can be retried",
                "pause": "finished jobs cannot be paused",
                "resume": "it is not paused",
            }[action]
            raise HTTPError(409, f"cannot {action} job {job_id}: it is {status}; {need}", job=job)
        return 200, {"ok": True, "action": action, "job": job}

    def queue_action(self, req: Request, name: str, action: str) -> tuple[int, Any]:
        reason = req.reason("paused") if action == "pause" else None

        def act() -> bool:
            q = self.queue
            if action == "pause":
                q.pause_queue(name, reason=reason)
            else:
                q.resume_queue(name)
            return q.is_queue_paused(name)

        return 200, {"ok": True, "action": action, "queue": name, "paused": self._db(act)}

    def worker_action(self, req: Request, worker_id: str, action: str) -> tuple[int, Any]:
        mode_text = req.option("mode") if action == "pause" else None
        try:
            mode = djobs.PauseMode(mode_text or "graceful")
        except ValueError:
            raise HTTPError(400, f"mode must be graceful or aggressive, got {mode_text!r}") from None
        reason = req.reason("paused") if action == "pause" else None

        def act() -> bool:
            q = self.queue
            if action == "pause":
                return q.pause_worker(worker_id, mode=mode, reason=reason)
            return q.resume_worker(worker_id)

        if not self._db(act):
            raise HTTPError(404, f"no worker {worker_id!r}")
        return 200, {"ok": True, "action": action, "worker": worker_id}

    def schedule_action(self, req: Request, name: str, action: str) -> tuple[int, Any]:
        reason = req.reason("paused") if action == "pause" else None

        def act() -> bool:
            q = self.queue
            if action == "pause":
                return q.pause_schedule(name, reason=reason)
            return q.resume_schedule(name)

        if not self._db(act):
            raise HTTPError(404, f"no schedule {name!r}")
        return 200, {"ok": True, "action": action, "schedule": name}

    def enqueue(self, req: Request) -> tuple[int, Any]:
        body = req.json()
        if not isinstance(body, dict):
            raise HTTPError(400, 'the body must be a JSON object like {"type": "send-email", "args": {...}}')
        unknown = sorted(set(body) - _ENQUEUE_KEYS)
        if unknown:
            raise HTTPError(400, f"unknown field(s) {', '.join(unknown)}; allowed: {', '.join(sorted(_ENQUEUE_KEYS))}")
        job_type = body.get("type")
        if not isinstance(job_type, str) or not job_type:
            raise HTTPError(400, "type (the job type name) is required")
        opts: dict[str, Any] = {}
        for key in ("priority", "retries"):
            if body.get(key) is not None:
                if not isinstance(body[key], int) or isinstance(body[key], bool):
                    raise HTTPError(400, f"{key} must be an integer")
                opts[key] = body[key]
        if body.get("delay") is not None:
            delay = body["delay"]
            if not isinstance(delay, (int, float)) or isinstance(delay, bool) or delay < 0 or not math.isfinite(delay):
                raise HTTPError(400, "delay must be a number of seconds >= 0")
            opts["delay"] = delay
        if body.get("at") is not None:
            try:
                opts["at"] = datetime.fromisoformat(str(body["at"]))
            except ValueError:
                raise HTTPError(400, f"at must be an ISO-8601 datetime, got {body['at']!r}") from None
        for key in ("queue", "unique"):
            if body.get(key) not in (None, ""):
                if not isinstance(body[key], str):
                    raise HTTPError(400, f"{key} must be a string")
                opts[key] = body[key]

        def act() -> tuple[str, Any]:
            q = self.queue
            try:
                job_id = q.enqueue(job_type, body.get("args"), **opts)
            except (TypeError, ValueError) as exc:
                if isinstance(exc, (djobs.UnknownJobType, djobs.ConfigError)):
                    raise
                raise HTTPError(400, f"cannot enqueue {job_type}: {exc}") from None
            return job_id, q.get_job(job_id)

        job_id, job = self._db(act)
        return 201, {"ok": True, "id": job_id, "job": job}


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


_PAGE: tuple[bytes, str] | None = None


def _page() -> tuple[bytes, str]:
    """The dashboard page and the CSP hash of its one inline script, read once."""
    global _PAGE
    if _PAGE is None:
        html = resources.files("djobs.ui").joinpath("index.html").read_text(encoding="utf-8")
        m = re.search(r"<script>(.*?)</script>", html, re.S)
        script = m.group(1) if m else ""
        digest = base64.b64encode(hashlib.sha256(script.encode("utf-8")).digest()).decode("ascii")
        _PAGE = (html.encode("utf-8"), digest)
    return _PAGE


def app(
    store: PeeweeStorage,
    queue: Queue | None = None,
    stats_retention: timedelta | float = timedelta(days=7),
    middleware: Sequence[Middleware] = (),
) -> WSGIApp:
    """The dashboard and its JSON API as one WSGI application.

        application = djobs.ui.app(store, queue=queue, middleware=[require_login])

    Pass the `queue` your handlers are registered on so the dashboard can enqueue them; without one a
    `djobs.Queue(store)` is made on first request (module-level `@djobs.job` types only). Throughput
    stats cover at most `stats_retention`. `middleware` callables (`mw(app) -> app`) wrap the whole
    application, the first one outermost, so an auth check listed first runs before anything else.
    """
    wrapped: WSGIApp = Dashboard(store, queue=queue, stats_retention=stats_retention)
    for mw in reversed(list(middleware)):
        wrapped = mw(wrapped)
    return wrapped
