"""`djobs ui`: serve the web dashboard (djobs.ui.app) with waitress, behind a token.

Authentication is on unless switched off: a random token (or `--token`/`DJOBS_UI_TOKEN`) is required on
every request, and the printed address carries it so a browser signs in by opening it. `--no-token`
serves without one, and only on a loopback address unless `--insecure` says that is really meant: on
any other address, anyone who reaches the port could cancel and enqueue jobs. The Host allow-list
(loopback names, the bound address, `--allow-host`) keeps DNS-rebinding pages out whatever the auth.
"""

from __future__ import annotations

import ipaddress
import secrets
import signal
import socket
import sys
from typing import Any

import typer

from djobs.cli import common


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _url_host(host: str) -> str:
    if host in ("0.0.0.0", "::", ""):
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host


def ui(
    ctx: typer.Context,
    host: str = typer.Option("127.0.0.1", "--host", envvar="DJOBS_UI_HOST", help="Address to listen on."),
    port: int = typer.Option(
        8080, "--port", envvar="DJOBS_UI_PORT", min=0, max=65535, help="Port to listen on (0: any free)."
    ),
    token: str | None = typer.Option(
        None, "--token", envvar="DJOBS_UI_TOKEN", metavar="TOKEN",
        help="Token to require (at least 16 characters) [default: a random one, printed in the address].",
    ),  # fmt: skip
    allow_host: list[str] | None = typer.Option(
        None, "--allow-host", envvar="DJOBS_UI_ALLOW_HOST", metavar="NAME",
        help="Also answer to this Host name (repeatable; .example.com for a domain; * for any). "
        "Loopback names and the --host address are always allowed.",
    ),  # fmt: skip
    trusted_proxy: str | None = typer.Option(
        None, "--trusted-proxy", envvar="DJOBS_UI_TRUSTED_PROXY", metavar="ADDR",
        help="Address of a reverse proxy whose X-Forwarded-Host/-Proto to believe (from it only).",
    ),  # fmt: skip
    no_token: bool = typer.Option(
        False, "--no-token", envvar="DJOBS_UI_NO_TOKEN",
        help="Serve without authentication (loopback addresses only, unless --insecure).",
    ),  # fmt: skip
    insecure: bool = typer.Option(
        False, "--insecure", envvar="DJOBS_UI_INSECURE",
        help="Allow --no-token on a non-loopback address: anyone who reaches the port can act on jobs.",
    ),  # fmt: skip
) -> None:
    """Serve the web dashboard until Ctrl-C (or SIGTERM).

    Queues, workers, schedules, jobs, workflows and live events with their actions, over HTTP (JSON API
    under /api/, Prometheus metrics at /metrics, probes at /healthz and /readyz). Every request needs the
    token: open the printed address in a browser, or send `Authorization: Bearer TOKEN`.
    """
    from djobs.ui.auth import default_hosts, token_problem

    if no_token and token:
        raise common.UsageProblem("--no-token and --token contradict each other")
    if no_token and not _is_loopback(host) and not insecure:
        raise common.UsageProblem(
            f"refusing to serve without a token on {host}, which is not a loopback address: anyone who reaches "
            "it could cancel and enqueue jobs (drop --no-token, or add --insecure if that is really meant)"
        )
    if token is not None and token_problem(token):
        raise common.UsageProblem(f"--token {token_problem(token)}")
    generated = token is None and not no_token
    if generated:
        token = secrets.token_urlsafe(32)

    from djobs.ui import allow_all
    from djobs.ui.app import Dashboard
    from djobs.ui.server import Server

    st = common.state(ctx)
    queue = common.open_queue(st)
    max_streams = 8
    dashboard = Dashboard(
        queue.storage, queue=queue, token=None if no_token else token,
        authorizer=allow_all if no_token else None,
        allowed_hosts=default_hosts(host, allow_host or ()), max_streams=max_streams,
    )  # fmt: skip
    try:
        server = Server(dashboard, host, port, threads=max_streams + 8, trusted_proxy=trusted_proxy)
    except (socket.gaierror, ValueError) as exc:
        raise common.UsageProblem(f"cannot listen on {host}:{port}: {exc}") from None
    except OSError as exc:
        raise common.OperationFailed(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    base = f"http://{_url_host(host)}:{server.port}/"
    shown = f"{base}?token={token}" if generated else base
    note = " (token from --token/DJOBS_UI_TOKEN)" if token and not generated else ""
    note += " WITHOUT AUTHENTICATION" if no_token else ""
    print(f"djobs: dashboard on {shown}{note} (Ctrl-C to stop)", file=sys.stderr, flush=True)
    if not _is_loopback(host):
        print(
            f"djobs: listening on {host} over plain HTTP: put TLS in front (the token would travel in clear); "
            f"Host names answered: {dashboard.guard.hosts.describe()} (add more with --allow-host)",
            file=sys.stderr, flush=True,
        )  # fmt: skip

    def stop(signum: int, frame: Any) -> None:
        dashboard.hub.close()  # open event streams end now, so the server's threads can finish
        raise KeyboardInterrupt  # waitress's loop stops on it

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        server.run()
    except KeyboardInterrupt:
        pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        dashboard.close()
        server.close()


def register(app: typer.Typer) -> None:
    app.command()(ui)
