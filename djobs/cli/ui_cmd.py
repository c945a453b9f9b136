"""`djobs ui`: serve the embedded web dashboard (djobs.ui.app) over HTTP.

The dashboard only calls the public library API; it is a WSGI application served here by the standard
library's threaded server. Put it behind a reverse proxy (with authentication) to expose it beyond
localhost; `djobs.ui.app(store, middleware=[...])` takes WSGI middleware for that when embedding it.
"""

from __future__ import annotations

import sys

import typer

from djobs.cli import common


def ui(
    ctx: typer.Context,
    host: str = typer.Option("127.0.0.1", "--host", envvar="DJOBS_UI_HOST", help="Address to listen on."),
    port: int = typer.Option(8080, "--port", envvar="DJOBS_UI_PORT", help="Port to listen on (0: any free)."),
) -> None:
    """Serve the web dashboard until Ctrl-C.

    Queues, workers, schedules, jobs and events with their actions, over HTTP (JSON API under /api/).
    """
    import socketserver
    from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

    from djobs.ui import app as make_app

    st = common.state(ctx)
    queue = common.open_queue(st)

    class Server(socketserver.ThreadingMixIn, WSGIServer):
        daemon_threads = True

    class QuietHandler(WSGIRequestHandler):
        def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib signature
            if st.debug:
                super().log_message(format, *args)

    server = make_server(host, port, make_app(queue.storage, queue=queue), server_class=Server, handler_class=QuietHandler)
    print(f"djobs: dashboard on http://{host}:{server.server_port}/ (Ctrl-C to stop)", file=sys.stderr)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


def register(app: typer.Typer) -> None:
    app.command()(ui)
