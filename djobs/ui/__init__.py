"""The embedded web dashboard: `djobs.ui.app(store, ...)` is a WSGI application to mount anywhere.

    import djobs, djobs.ui
    from wsgiref.simple_server import make_server

    store = djobs.connect("sqlite:///djobs.db")
    queue = djobs.Queue(store)              # the queue your handlers are registered on
    application = djobs.ui.app(store, queue=queue, middleware=[require_login])
    make_server("127.0.0.1", 8080, application).serve_forever()

It serves one self-contained page (no CDN; it polls the JSON API every 2 s) and the API under `api/`:
`overview`, `jobs`, `jobs/<id>`, `events`, `stats`, and POST actions to cancel, retry, pause and resume
jobs, queues, workers and schedules, and to enqueue. Every link is relative and `SCRIPT_NAME` is honoured,
so it works under any prefix (e.g. `/admin/jobs/`). It has no authentication of its own: put it behind
your own through `middleware=[...]` or the server that mounts it.
"""

from __future__ import annotations

from djobs.ui.wsgi import Dashboard, HTTPError, Middleware, WSGIApp, app

__all__ = ["Dashboard", "HTTPError", "Middleware", "WSGIApp", "app"]
