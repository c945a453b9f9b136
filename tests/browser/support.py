"""Serving and calling the dashboard in tests: an HTTP client that follows no redirects, the app served by
waitress on a thread (as `djobs ui` serves it), and the real `djobs ui` executable in a subprocess."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

TIMEOUT = 20.0
TOKEN = "test-token-0123456789abcdef"


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    raw: bytes

    @property
    def json(self) -> Any:
        assert self.headers.get("content-type", "").startswith("application/json"), (self.status, self.headers, self.raw[:200])
        return json.loads(self.raw)

    @property
    def text(self) -> str:
        return self.raw.decode("utf-8")


@dataclass
class Client:
    """A tiny HTTP client for one served app (http.client: redirects are not followed). It sends the
    token as a bearer credential unless `token=None`."""

    port: int
    prefix: str = ""
    token: str | None = TOKEN
    host: str = "127.0.0.1"
    default_headers: dict[str, str] = field(default_factory=dict)

    def call(
        self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None, raw: bytes | None = None
    ) -> Reply:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        hdrs = dict(self.default_headers)
        if self.token is not None:
            hdrs["Authorization"] = f"Bearer {self.token}"
        hdrs.update(headers or {})
        if data is not None:
            hdrs.setdefault("Content-Type", "application/json")
        try:
            try:
                conn.request(method, self.prefix + path, body=data, headers=hdrs)
            except (BrokenPipeError, ConnectionResetError):
                # The server answered (413) and closed before the whole body was sent: read that answer.
                if data is None or len(data) < 65536:
                    raise
            resp = conn.getresponse()
            return Reply(resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read())
        finally:
            conn.close()

    def get(self, path: str, **kw: Any) -> Reply:
        return self.call("GET", path, **kw)

    def post(self, path: str, body: Any = None, **kw: Any) -> Reply:
        return self.call("POST", path, body, **kw)


def wait_for(predicate: Callable[[], Any], what: str, timeout: float = TIMEOUT) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


class UiProcess:
    """The real `djobs ui` executable on a free port; `base` is its address, `token` the one it printed."""

    def __init__(self, url: str, *args: str, env: dict[str, str] | None = None) -> None:
        exe = Path(sys.executable).with_name("djobs")
        self.proc = subprocess.Popen(
            [str(exe), "--database", url, "ui", "--port", "0", *args],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
        )
        assert self.proc.stderr is not None
        self.banner = self.proc.stderr.readline()
        match = re.search(r"(http://[^/ ]+:(\d+)/)(\?token=(\S+))?", self.banner)
        if match is None:
            rest = self.proc.stderr.read() if self.proc.poll() is not None else ""
            self.stop()
            raise AssertionError(f"djobs ui did not start: {self.banner!r} {rest!r}")
        self.base = match.group(1)
        self.port = int(match.group(2))
        self.token = match.group(4)
        self.url = match.group(0)

    def client(self, token: str | None = None, **kw: Any) -> Client:
        return Client(self.port, token=token if token is not None else self.token, **kw)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        if self.proc.stderr is not None:
            self.proc.stderr.close()
        return self.proc.returncode


class Proxy:
    """A TCP forwarder to PostgreSQL that can be cut, to make the database unreachable for real."""

    def __init__(self, target: tuple[str, int], port: int = 0) -> None:
        self.target = target
        self.listener = socket.create_server(("127.0.0.1", port))
        self.listener.settimeout(0.05)
        self.port = self.listener.getsockname()[1]
        self.socks: list[socket.socket] = []
        self.stopped = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.stopped.is_set():
            try:
                down, _ = self.listener.accept()
            except (TimeoutError, OSError):
                continue
            up = socket.create_connection(self.target)
            self.socks += [down, up]
            for a, b in ((down, up), (up, down)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                dst.sendall(data)
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)

    def stop(self) -> None:
        self.stopped.set()
        self.listener.close()
        for s in self.socks:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()
