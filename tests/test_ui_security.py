"""`djobs ui` attacked as a hostile client would, against the real executable: missing or wrong
credentials, a rebinding Host, cross-site writes, slow and oversized requests, malformed bodies. Each
refused write is checked in the database: nothing changed."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from browser.support import TIMEOUT, UiProcess, wait_for

import djobs


@pytest.fixture
def db(sqlite_url: str) -> Iterator[tuple[str, djobs.Queue]]:
    store = djobs.connect(sqlite_url)
    queue = djobs.Queue(store)
    yield sqlite_url, queue
    store.close()


@pytest.fixture
def ui(db: tuple[str, djobs.Queue]) -> Iterator[UiProcess]:
    proc = UiProcess(db[0])
    yield proc
    assert proc.stop() == 0


def _unchanged(queue: djobs.Queue) -> None:
    assert queue.list_jobs() == [] and queue.paused_queues() == [] and queue.events_since(0) == []


def test_every_request_needs_the_token(ui: UiProcess, db: tuple[str, djobs.Queue]) -> None:
    assert ui.token and len(ui.token) >= 32, ui.banner
    anonymous = ui.client(token="")
    anonymous.token = None
    for path in ("/api/overview", "/api/jobs", "/api/events", "/api/stream", "/metrics", "/dashboard.js"):
        r = anonymous.get(path)
        assert r.status == 401, path
        assert r.headers["www-authenticate"].startswith("Bearer"), path
    page = anonymous.get("/", headers={"Accept": "text/html"})
    assert page.status == 401 and "djobs ui" in page.text and page.headers["content-type"].startswith("text/html")
    assert anonymous.post("/api/queues/default/pause").status == 401
    assert anonymous.post("/api/jobs", {"type": "x"}).status == 401
    wrong = ui.client(token="x" * len(ui.token))
    assert wrong.get("/api/overview").status == 401
    assert wrong.post("/api/queues/default/pause").status == 401
    # The token in the address is for a browser's first page load only: never accepted by the API.
    assert anonymous.get(f"/api/overview?token={ui.token}").status == 401
    _unchanged(db[1])
    # Probes answer without it.
    assert anonymous.get("/healthz").json == {"ok": True}
    assert anonymous.get("/readyz").json == {"ok": True}
    # With it, as a bearer credential:
    assert ui.client().get("/api/overview").status == 200


def test_the_address_with_the_token_signs_a_browser_in_with_a_strict_cookie(ui: UiProcess) -> None:
    anonymous = ui.client()
    anonymous.token = None
    r = anonymous.get(f"/?token={ui.token}")
    assert r.status == 303 and r.headers["location"] == "/"  # the token leaves the address bar
    cookie = r.headers["set-cookie"]
    name_value, *attrs = [p.strip() for p in cookie.split(";")]
    assert {"HttpOnly", "SameSite=Strict", "Path=/"} <= set(attrs), cookie
    assert ui.token in name_value and not any(a.lower().startswith(("expires", "max-age")) for a in attrs)
    signed_in = {"Cookie": name_value}
    assert anonymous.get("/", headers=signed_in).status == 200
    assert anonymous.get("/api/overview", headers=signed_in).status == 200
    assert anonymous.post("/api/queues/q/pause", headers={**signed_in, "Origin": ui.base.rstrip("/")}).status == 200
    name = name_value.split("=", 1)[0]
    assert anonymous.get("/api/overview", headers={"Cookie": f"{name}={'y' * len(ui.token)}"}).status == 401
    bad = anonymous.get("/?token=wrong-token-0123456789", headers={"Accept": "text/html"})
    assert bad.status == 401 and "set-cookie" not in bad.headers


def test_a_rebinding_host_is_refused(ui: UiProcess, db: tuple[str, djobs.Queue]) -> None:
    c = ui.client()
    for host in (f"evil.example:{ui.port}", "evil.example", "127.0.0.1.evil.example"):
        assert c.get("/api/jobs", headers={"Host": host}).status == 403, host
        r = c.post("/api/queues/default/pause", headers={"Host": host, "Origin": f"http://{host}"})
        assert r.status == 403, host
    _unchanged(db[1])
    assert c.get("/api/jobs", headers={"Host": f"localhost:{ui.port}"}).status == 200


def test_cross_site_and_null_origin_writes_change_nothing(ui: UiProcess, db: tuple[str, djobs.Queue]) -> None:
    c = ui.client()
    for headers in (
        {"Origin": "null"},
        {"Origin": "https://evil.example"},
        {"Origin": f"https://127.0.0.1:{ui.port}"},
        {"Origin": "http://evil.example", "X-Forwarded-Host": "evil.example"},
        {"Sec-Fetch-Site": "cross-site"},
    ):
        for path, body in (("/api/queues/default/pause", None), ("/api/jobs", {"type": "t", "args": {}})):
            r = c.post(path, body, headers=headers)
            assert r.status == 403, (path, headers)
    _unchanged(db[1])


def test_oversized_and_malformed_bodies_are_4xx_never_500(ui: UiProcess, db: tuple[str, djobs.Queue]) -> None:
    c = ui.client()
    cases: list[tuple[bytes, dict[str, str]]] = [
        (b"{not json", {}),
        (b"\xff\xfe\x00garbage", {}),
        (b"[" * 5000 + b"]" * 5000, {}),
        (b'{"type": "t", "args": ' + b"[" * 101 + b"]" * 101 + b"}", {}),
        (b'{"type": "t", "priority": NaN}', {}),
        (b'{"type": "t", "delay": 1e400}', {}),
        (b'{"type": "t", "delay": 1e300}', {}),
        (b'{"type": "t", "priority": 2147483648}', {}),
        (b'{"type": "t", "retries": -1}', {}),
        (b'{"type": "t", "at": "9999-12-31T23:59:59-05:00"}', {}),
        (b'{"type": "t", "at": "0001-01-01T00:00:00+14:00"}', {}),
        (b'{"type": "t", "at": "2030-01-01T00:00:00"}', {}),
        (b'{"type": "t\\u0000x"}', {}),
        (b'{"type": "' + b"t" * 256 + b'"}', {}),
        (b'{"type": "t", "args": "\\ud800"}', {}),
        (b'{"type": "t", "queue": "\\u001b[31mred"}', {}),
        (b'"just a string"', {}),
        (b'{"type": "t"}', {"Content-Type": "text/plain"}),
        (b'{"type": "t"}', {"Content-Type": "application/x-www-form-urlencoded"}),
        (b'{"type": "t"}', {"Content-Length": "-5"}),
    ]
    for raw, headers in cases:
        r = c.call("POST", "/api/jobs", raw=raw, headers=headers)
        assert 400 <= r.status < 500, (raw[:60], r.status, r.raw[:200])
        if r.headers.get("content-type", "").startswith("application/json"):
            assert r.json["error"], raw[:60]
    # Over 1 MiB: refused from the headers alone (413), before the body is read.
    with socket.create_connection(("127.0.0.1", ui.port), timeout=TIMEOUT) as s:
        s.sendall(
            f"POST /api/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {ui.token}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {(1 << 20) + 1}\r\n\r\n".encode() + b'{"type": "t"'
        )
        assert s.recv(200).startswith(b"HTTP/1.1 413")
    # Exactly 1 MiB is read and judged on its content.
    padded = b'{"type": "t", "args": "' + b"x" * ((1 << 20) - 26) + b'"}'
    assert len(padded) <= 1 << 20
    assert c.call("POST", "/api/jobs", raw=padded).status == 400  # no such type; the size was fine
    for path in ("/api/jobs/bulk", "/api/queues/default/purge", "/api/queues/default/pause", "/api/jobs/x/cancel"):
        for raw in (b"{not json", b"[" * 3000, b'{"ids": "x"}', b'{"reason": "\\u0000"}'):
            r = c.call("POST", path, raw=raw)
            assert 400 <= r.status < 500, (path, raw[:40], r.status, r.raw[:200])
    for path in ("/api/jobs?limit=" + "9" * 30, "/api/jobs?offset=1e9", "/api/events?after=-1", "/api/jobs/%00",
                 "/api/jobs?queue=" + "q" * 300, "/api/stats?window=" + "9" * 50, "/api/jobs?" + "&".join(f"a{i}=1" for i in range(500))):
        r = c.get(path)
        assert 400 <= r.status < 500, (path, r.status, r.raw[:200])
    _unchanged(db[1])


def test_a_slowloris_of_300_connections_leaves_the_dashboard_answering(ui: UiProcess) -> None:
    socks: list[socket.socket] = []
    try:
        for i in range(300):
            s = socket.create_connection(("127.0.0.1", ui.port), timeout=10)
            if i % 2:  # headers that never end
                s.sendall(b"GET /api/overview HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
            else:  # a body that never arrives
                s.sendall(b"POST /api/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{")
            socks.append(s)
        c = ui.client()
        deadline = time.monotonic() + TIMEOUT
        answered = 0
        while answered < 20:
            assert time.monotonic() < deadline, f"only {answered} answers while 300 slow connections were open"
            assert c.get("/api/overview").status == 200
            answered += 1
        # They cost sockets, not threads: the server's thread count stays bounded.
        threads = int(next(line.split()[1] for line in Path(f"/proc/{ui.proc.pid}/status").read_text().splitlines() if line.startswith("Threads:")))
        assert threads < 40, threads
        for s in socks[::3]:  # the slow clients trickle more, which must not pin anything either
            s.sendall(b"x")
        assert c.get("/api/jobs").status == 200
        assert c.post("/api/queues/q/pause").status == 200
    finally:
        for s in socks:
            s.close()


def test_bad_options_exit_2_with_one_line(tmp_path: Path) -> None:
    exe = str(Path(sys.executable).with_name("djobs"))
    url = f"sqlite:///{tmp_path / 'x.db'}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("DJOBS_UI")}
    for args, word in (
        (["--host", "0.0.0.0", "--no-token"], "--insecure"),
        (["--token", "short"], "16"),
        (["--token", "has space in it 0123456789"], "printable"),
        (["--no-token", "--token", "0123456789abcdef0123"], "contradict"),
        (["--host", "256.1.1.1"], "256.1.1.1"),
        (["--port", "99999"], "65535"),
    ):
        argv = [exe, "--database", url, "ui", *args] + ([] if "--port" in args else ["--port", "0"])
        p = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=60)
        assert p.returncode == 2, (args, p.returncode, p.stderr)
        lines = p.stderr.strip().splitlines()
        assert len(lines) == 1 and word in lines[0] and "Traceback" not in p.stderr, (args, p.stderr)


def test_token_from_the_environment_and_no_token_on_loopback(db: tuple[str, djobs.Queue]) -> None:
    token = "env-token-abcdefghijklmnop"
    proc = UiProcess(db[0], env={"DJOBS_UI_TOKEN": token})
    try:
        assert proc.token is None and token not in proc.banner and "DJOBS_UI_TOKEN" in proc.banner
        assert proc.client(token=token).get("/api/overview").status == 200
        assert proc.client(token="wrong-token-abcdefghijk").get("/api/overview").status == 401
    finally:
        assert proc.stop() == 0
    open_proc = UiProcess(db[0], "--no-token")
    try:
        assert "WITHOUT AUTHENTICATION" in open_proc.banner
        c = open_proc.client(token="-")
        c.token = None
        assert c.get("/api/overview").status == 200
        assert c.post("/api/queues/q/pause", headers={"Origin": "null"}).status == 403  # still no cross-site writes
        assert c.get("/api/overview", headers={"Host": "evil.example"}).status == 403
    finally:
        assert open_proc.stop() == 0


def test_the_dashboard_serves_its_page_and_stops_on_sigterm(ui: UiProcess, db: tuple[str, djobs.Queue]) -> None:
    db[1].pause_queue("emails", reason="outage")
    c = ui.client()
    overview = wait_for(lambda: (r := c.get("/api/overview")).status == 200 and r.json, "overview")
    assert [(q["name"], q["paused"]) for q in overview["queues"]] == [("emails", True)]
    page = c.get("/")
    assert page.status == 200 and "<html" in page.text.lower()
    assert json.loads(c.get("/readyz").raw) == {"ok": True}
    started = time.monotonic()
    assert ui.stop() == 0
    assert time.monotonic() - started < 15


def test_forwarded_headers_count_only_from_the_trusted_proxy(db: tuple[str, djobs.Queue]) -> None:
    proxied = {"Host": "127.0.0.1", "X-Forwarded-Host": "jobs.example.com", "X-Forwarded-Proto": "https",
               "Origin": "https://jobs.example.com"}  # fmt: skip
    plain = UiProcess(db[0], "--allow-host", "jobs.example.com")
    try:  # no proxy configured: the forwarded name is ignored, so the Origin does not match
        assert plain.client().post("/api/queues/a/pause", headers=proxied).status == 403
    finally:
        assert plain.stop() == 0
    behind = UiProcess(db[0], "--allow-host", "jobs.example.com", "--trusted-proxy", "127.0.0.1")
    try:  # from the proxy's address, Host and scheme come from its headers
        c = behind.client()
        assert c.post("/api/queues/a/pause", headers=proxied).status == 200
        evil = {**proxied, "X-Forwarded-Host": "evil.example", "Origin": "https://evil.example"}
        assert c.post("/api/queues/b/pause", headers=evil).status == 403  # still only allowed names
    finally:
        assert behind.stop() == 0
    assert db[1].paused_queues() == ["a"]
