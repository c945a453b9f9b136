"""The dashboard as a WSGI application: the guard, routing, error mapping, the database threads.

    application = djobs.ui.app(store, queue=queue, authorizer=is_staff)

WSGI (not ASGI) because every Python web stack can mount it: waitress (what `djobs ui` runs), gunicorn,
Flask/Django dispatchers, or an ASGI server through an adapter.

Every database call runs on a small private thread pool. Peewee binds one connection per thread, so a
server that starts a thread per request would otherwise open (and, with the PostgreSQL pool, never hand
back) a connection per request; the pool bounds the dashboard to `DB_THREADS` connections whatever the
server does, and keeps a busy dashboard from starving workers that share the store. The event stream
shares one reader of the event log among all open pages (see `djobs.ui.live`).

Only the public library API is used (`djobs.Queue` and its methods), so the dashboard works against any
database the library can open.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from datetime import timedelta
from importlib import resources
from typing import TYPE_CHECKING, Any, TypeVar

import djobs
from djobs.ui import actions, live, reads, validate
from djobs.ui.auth import Authorizer, Guard
from djobs.ui.http import (
    SECURITY_HEADERS,
    Body,
    HTTPError,
    Request,
    Response,
    StartResponse,
    WSGIApp,
    error_response,
    json_response,
    status_line,
)
from djobs.ui.stats import Throughput

if TYPE_CHECKING:
    from djobs.queue import Queue
    from djobs.storage import PeeweeStorage

log = logging.getLogger("djobs.ui")

T = TypeVar("T")
Middleware = Callable[[WSGIApp], WSGIApp]

#: Threads (hence at most this many database connections) the dashboard uses for its reads and actions.
DB_THREADS = 4
#: How long a request waits for the database before answering 503.
DB_TIMEOUT = 30.0

Route = tuple[str, re.Pattern[str], Callable[..., Any]]
_NAME = r"(?P<name>.+)"  # queue names may hold "/" (sent as %2F, which WSGI decodes)
_ID = r"(?P<job_id>[^/]+)"


class Dashboard:
    """The WSGI callable. Build it with `djobs.ui.app(...)`, which also applies middleware."""

    def __init__(
        self,
        store: PeeweeStorage,
        queue: Queue | None = None,
        stats_retention: timedelta | float = timedelta(days=7),
        *,
        token: str | None = None,
        authorizer: Authorizer | None = None,
        allowed_hosts: Iterable[str] | None = None,
        max_streams: int = 8,
    ) -> None:
        retention = stats_retention.total_seconds() if isinstance(stats_retention, timedelta) else float(stats_retention)
        if retention <= 0:
            raise ValueError("stats_retention must be positive")
        if max_streams < 0:
            raise ValueError("max_streams must be >= 0")
        self.store = store
        self.guard = Guard(token=token, authorizer=authorizer, allowed_hosts=allowed_hosts)
        self._queue = queue
        self._queue_lock = threading.Lock()
        self.stats = Throughput(retention)
        self.hub = live.EventHub(lambda: self.queue, max_streams=max_streams)
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()
        self._metrics: Any = None
        self.routes: list[Route] = []
        get, post = "GET", "POST"
        for method, pattern, fn in (
            (get, r"healthz", reads.healthz),
            (get, r"readyz", reads.readyz),
            (get, r"metrics", reads.metrics),
            (get, r"api/overview", reads.overview),
            (get, r"api/jobs", reads.list_jobs),
            (post, r"api/jobs", actions.enqueue),
            (post, r"api/jobs/bulk", actions.bulk),
            (get, rf"api/jobs/{_ID}", reads.job_detail),
            (get, rf"api/jobs/{_ID}/workflow", reads.workflow),
            (post, rf"api/jobs/{_ID}/(?P<action>cancel|retry|pause|resume)", actions.job_action),
            (post, rf"api/jobs/{_ID}/signal", actions.signal),
            (get, r"api/events", reads.events),
            (get, r"api/stream", live.stream),
            (get, r"api/stats", reads.throughput),
            (post, rf"api/queues/{_NAME}/(?P<action>pause|resume)", actions.queue_action),
            (post, rf"api/queues/{_NAME}/purge", actions.purge_queue),
            (post, rf"api/workers/{_NAME}/(?P<action>pause|resume)", actions.worker_action),
            (post, rf"api/schedules/{_NAME}/(?P<action>pause|resume)", actions.schedule_action),
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

    def db(self, fn: Callable[[], T], timeout: float = DB_TIMEOUT) -> T:
        """Run fn on the dashboard's own threads (see the module docstring for why)."""
        if self._pool is None:
            with self._pool_lock:
                if self._pool is None:
                    self._pool = ThreadPoolExecutor(DB_THREADS, thread_name_prefix="djobs-ui")
        future = self._pool.submit(fn)
        try:
            return future.result(timeout)
        except FutureTimeout:
            future.cancel()
            raise djobs.StorageUnavailable(f"the database did not answer within {timeout:g} s") from None

    def metrics_registry(self) -> Any:
        """The Prometheus registry of `/metrics`, made on first scrape (prometheus_client loads lazily)."""
        if self._metrics is None:
            from djobs.metrics import dashboard_registry

            self._metrics = dashboard_registry(lambda: self.queue, self.db)
        return self._metrics

    def close(self) -> None:
        """End open event streams and stop the database threads (they hold one connection each). Call it
        when a long-lived process drops a dashboard; a server's exit does it implicitly."""
        self.hub.close()
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        req = Request(environ)
        body: Body
        try:
            status, headers, body = self._dispatch(req)
        except HTTPError as exc:
            status, headers, body = error_response(exc.status, exc.message, exc.headers, **exc.extra)
        except djobs.StorageUnavailable as exc:
            status, headers, body = error_response(503, str(exc), [("Retry-After", "2")])
        except djobs.DuplicateJob as exc:
            status, headers, body = error_response(409, str(exc), existing_id=exc.existing_id)
        except djobs.JobNotFound as exc:
            status, headers, body = error_response(404, str(exc))
        except (djobs.UnknownJobType, djobs.ConfigError) as exc:
            status, headers, body = error_response(400, str(exc))
        except Exception as exc:  # a dashboard bug must answer, not drop the connection
            log.exception("djobs.ui: %s %s failed", req.method, req.path)
            status, headers, body = error_response(500, f"internal error: {type(exc).__name__}")
        if req.method == "HEAD":
            close = getattr(body, "close", None)
            if close is not None:
                close()
            body = b""
        start_response(status_line(status), headers)
        return [body] if isinstance(body, bytes) else body

    def _dispatch(self, req: Request) -> Response:
        path = req.path
        rel = path[1:] if path.startswith("/") else path
        refused = self.guard.check(req, rel)
        if refused is not None:
            return refused
        if req.bad_query:
            raise HTTPError(400, "too many query parameters")
        if path == "":
            # Relative links only resolve under the mount point when the page URL ends in "/".
            qs = req.environ.get("QUERY_STRING")
            location = (req.script_name or "") + "/" + (f"?{qs}" if qs else "")
            return 301, [("Location", location), ("Content-Length", "0")], b""
        method = "GET" if req.method == "HEAD" else req.method
        if rel in ASSETS:
            if method != "GET":
                raise HTTPError(405, f"{req.method} not allowed here", [("Allow", "GET")], allow=["GET"])
            return self._static("" if rel == "index.html" else rel)
        allowed: list[str] = []
        for route_method, pattern, fn in self.routes:
            m = pattern.match(rel)
            if m is None:
                continue
            if route_method != method:
                allowed.append(route_method)
                continue
            params = m.groupdict()
            for key, value in params.items():
                problem = validate.name_problem(value) if key != "action" else None
                if problem:  # never sent to the database: a NUL in a name is an error on PostgreSQL
                    raise HTTPError(400, f"{key.replace('_', ' ')} {problem}")
            result = fn(self, req, **params)
            if len(result) == 3:
                return result  # type: ignore[no-any-return]
            status, payload = result
            return json_response(status, payload)
        if allowed:
            raise HTTPError(405, f"{req.method} not allowed on {rel}", [("Allow", ", ".join(allowed))], allow=allowed)
        raise HTTPError(404, f"no such page: {rel}")

    def _static(self, rel: str) -> Response:
        body, ctype = _asset(rel)
        headers = [
            ("Content-Type", ctype),
            ("Content-Length", str(len(body))),
            ("Cache-Control", "no-store"),
            *SECURITY_HEADERS,
        ]
        if rel == "":
            headers.append((
                "Content-Security-Policy",
                "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src data:; "
                "base-uri 'none'; form-action 'none'; frame-ancestors 'self'",
            ))  # fmt: skip
        return 200, headers, body


#: The page and its two files, served from the package (no CDN, nothing fetched from elsewhere).
ASSETS = {
    "": ("index.html", "text/html; charset=utf-8"),
    "index.html": ("index.html", "text/html; charset=utf-8"),
    "dashboard.js": ("dashboard.js", "text/javascript; charset=utf-8"),
    "dashboard.css": ("dashboard.css", "text/css; charset=utf-8"),
}
_ASSET_CACHE: dict[str, bytes] = {}


def _asset(rel: str) -> tuple[bytes, str]:
    name, ctype = ASSETS[rel]
    if name not in _ASSET_CACHE:
        _ASSET_CACHE[name] = resources.files("djobs.ui").joinpath(name).read_bytes()
    return _ASSET_CACHE[name], ctype


def app(
    store: PeeweeStorage,
    queue: Queue | None = None,
    stats_retention: timedelta | float = timedelta(days=7),
    middleware: Sequence[Middleware] = (),
    *,
    authorizer: Authorizer | None = None,
    token: str | None = None,
    allowed_hosts: Iterable[str] | None = None,
    max_streams: int = 8,
) -> WSGIApp:
    """The dashboard and its JSON API as one WSGI application.

        application = djobs.ui.app(store, queue=queue, authorizer=lambda environ: is_staff(environ))

    It serves nobody until told who may use it: `authorizer(environ) -> bool` is asked for every request
    (`djobs.ui.allow_all` when authentication in front of it already decided), and/or `token` is accepted
    as `Authorization: Bearer` or through the cookie that opening `?token=...` sets. `allowed_hosts` are
    the host names it answers to besides loopback names (`.example.com` for a domain, `"*"` for any).

    Pass the `queue` your handlers are registered on so the dashboard can enqueue them; without one a
    `djobs.Queue(store)` is made on first request. Throughput stats cover at most `stats_retention`.
    `max_streams` bounds the open live-event streams (each holds a server thread). `middleware` callables
    (`mw(app) -> app`) wrap the whole application, the first one outermost.
    """
    wrapped: WSGIApp = Dashboard(
        store, queue=queue, stats_retention=stats_retention, token=token, authorizer=authorizer,
        allowed_hosts=allowed_hosts, max_streams=max_streams,
    )  # fmt: skip
    for mw in reversed(list(middleware)):
        wrapped = mw(wrapped)
    return wrapped
