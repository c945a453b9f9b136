"""Serving a WSGI app for real: waitress, set up so slow or hostile clients cannot take the server.

waitress reads requests on one event loop and hands only complete requests to a fixed pool of threads, so
a client that sends its headers or body slowly (slowloris) costs a socket, not a thread. On top of its
defaults: hundreds of connections (the file-descriptor limit is raised to fit), `poll()` rather than
`select()` (which fails past 1024 descriptors), idle connections closed after `channel_timeout`, request
headers capped at 64 KiB and bodies at the API's 1 MiB (waitress answers 413 itself, before the app),
tracebacks never shown to clients, and proxy headers ignored unless a trusted proxy is named (then waitress
rewrites `Host` and the scheme from them for requests that come from that proxy only).

Used by `djobs ui` and by `djobs worker --metrics-port`.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from djobs.ui.validate import MAX_BODY

log = logging.getLogger("djobs.ui")

#: Connections held open at once (each costs a file descriptor, not a thread).
CONNECTIONS = 1000
CHANNEL_TIMEOUT = 60
MAX_HEADER = 64 * 1024


def raise_fd_limit(want: int) -> int:
    """Raise the soft open-files limit toward `want` (never above the hard limit); the soft limit now."""
    try:
        import resource
    except ImportError:  # pragma: no cover - not on POSIX
        return want
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = want if hard == resource.RLIM_INFINITY else min(want, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    return want if soft == resource.RLIM_INFINITY else soft


class Server:
    """A waitress server bound at construction (so the port is known before serving)."""

    def __init__(
        self,
        app: Any,
        host: str,
        port: int,
        *,
        threads: int = 8,
        trusted_proxy: str | None = None,
        connections: int = CONNECTIONS,
        channel_timeout: int = CHANNEL_TIMEOUT,
        ident: str = "djobs",
    ) -> None:
        from waitress import create_server

        limit = raise_fd_limit(connections + 64)
        options: dict[str, Any] = dict(
            host=host,
            port=port,
            threads=threads,
            connection_limit=max(10, min(connections, limit - 64)),
            channel_timeout=channel_timeout,
            cleanup_interval=max(1, min(10, channel_timeout // 2)),
            backlog=1024,
            max_request_header_size=MAX_HEADER,
            max_request_body_size=MAX_BODY,
            asyncore_use_poll=True,
            expose_tracebacks=False,
            clear_untrusted_proxy_headers=True,
            channel_request_lookahead=1,  # lets a long response (an event stream) see its client leave
            ident=ident,
        )
        if trusted_proxy:
            options.update(
                trusted_proxy=trusted_proxy,
                trusted_proxy_count=1,
                trusted_proxy_headers={"x-forwarded-host", "x-forwarded-proto", "x-forwarded-for", "x-forwarded-port"},
            )
        self._server = create_server(app, **options)
        self._thread: threading.Thread | None = None
        self._closing = False

    @property
    def port(self) -> int:
        port = getattr(self._server, "effective_port", None)
        if port is None:  # several sockets (a name that resolves to IPv4 and IPv6): they share the port
            port = self._server.effective_listen[0][1]
        return int(port)

    def run(self) -> None:
        """Serve until `close()` (from another thread) or KeyboardInterrupt/SystemExit in this one."""
        try:
            self._server.run()
        except (OSError, ValueError):
            if not self._closing:  # a descriptor closed under the loop by close(): the expected end
                raise

    def start(self, name: str = "djobs-http") -> Server:
        """Serve on a daemon thread."""
        self._thread = threading.Thread(target=self.run, name=name, daemon=True)
        self._thread.start()
        return self

    def close(self, timeout: float = 5.0) -> None:
        """Let running requests finish (up to `timeout`; end long responses such as event streams first),
        then close every connection and the listening sockets, which ends `run()`."""
        from waitress import wasyncore

        self._closing = True
        server = self._server
        try:
            server.task_dispatcher.shutdown(timeout=timeout)
        except Exception:
            log.debug("stopping the HTTP server's threads", exc_info=True)
        try:
            wasyncore.close_all(getattr(server, "_map", None) or server.map)
        except Exception:  # closed already, or closed while the loop was mid-poll
            log.debug("closing the HTTP server", exc_info=True)
        if self._thread is not None:
            self._thread.join(timeout)
