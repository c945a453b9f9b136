"""The embedded web dashboard: `djobs.ui.app(store, ...)` is a WSGI application to mount anywhere.

    import djobs, djobs.ui

    store = djobs.connect("sqlite:///djobs.db")
    queue = djobs.Queue(store)              # the queue your handlers are registered on
    application = djobs.ui.app(store, queue=queue, authorizer=lambda environ: is_staff(environ))

It serves nobody until told who may: `authorizer(environ) -> bool` is asked for every request
(`djobs.ui.allow_all` when a login in front of it already decided) and/or a `token` is required
(`Authorization: Bearer`, or the cookie that opening `?token=...` sets). `djobs ui` serves it with waitress
and a random token.

One self-contained page (no CDN) and a JSON API under `api/`: `overview`, `jobs` (summaries, paged),
`jobs/<id>`, `jobs/<id>/workflow`, `events`, `stream` (server-sent events), `stats`, POST actions on
jobs, queues, workers and schedules, bulk actions, purge and enqueue; `metrics` (Prometheus), `healthz`,
`readyz`. Every link is relative and `SCRIPT_NAME` is honoured, so it works under any prefix.
"""

from __future__ import annotations

from djobs.ui.app import Dashboard, Middleware, app
from djobs.ui.auth import Authorizer, allow_all
from djobs.ui.http import HTTPError, WSGIApp

__all__ = ["Authorizer", "Dashboard", "HTTPError", "Middleware", "WSGIApp", "allow_all", "app"]
