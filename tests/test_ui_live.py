"""Live and bulk: the server-sent event stream (fed by the database log, so it carries other processes'
events), bulk actions on selected jobs, purging a queue, the workflow tree, and embedding without a token."""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from browser.support import TIMEOUT, TOKEN, Client, wait_for

import djobs
import djobs.ui
from djobs.ui import live
from djobs.ui.server import Server


@pytest.fixture
def dash(store: Any, queue: djobs.Queue) -> Iterator[Callable[..., tuple[djobs.ui.Dashboard, Client]]]:
    made: list[tuple[djobs.ui.Dashboard, Server]] = []

    def build(**kw: Any) -> tuple[djobs.ui.Dashboard, Client]:
        kw.setdefault("token", TOKEN)
        d = djobs.ui.Dashboard(store, queue=queue, **kw)
        srv = Server(d, "127.0.0.1", 0, threads=12).start()
        made.append((d, srv))
        return d, Client(srv.port)

    yield build
    for d, srv in made:
        d.close()
        srv.close()


class Stream:
    """One open `api/stream`, read frame by frame."""

    def __init__(self, port: int, path: str = "/api/stream", headers: dict[str, str] | None = None) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT)
        self.conn.request("GET", path, headers={"Authorization": f"Bearer {TOKEN}", **(headers or {})})
        self.resp = self.conn.getresponse()

    def frames(self, want: Callable[[dict[str, Any]], bool], timeout: float = TIMEOUT) -> list[dict[str, Any]]:
        """Frames (dicts of field → value, "comment" for comment lines) until `want` holds for one."""
        got: list[dict[str, Any]] = []
        frame: dict[str, Any] = {}
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.resp.readline()
            if not line:
                break
            text = line.decode().rstrip("\n")
            if text == "":
                if frame:
                    got.append(frame)
                    if want(frame):
                        return got
                frame = {}
            elif text.startswith(":"):
                frame.setdefault("comment", []).append(text[1:].strip())
            else:
                key, _, value = text.partition(":")
                frame[key] = value.strip()
        raise AssertionError(f"stream ended or timed out; got {got}")

    def close(self) -> None:
        self.resp.close()  # the response holds the socket open past the connection's close
        self.conn.close()


def _event(frame: dict[str, Any]) -> dict[str, Any] | None:
    return json.loads(frame["data"]) if frame.get("event") == "job-event" else None


def test_stream_carries_events_from_other_processes(dash: Any, queue: djobs.Queue, db_url: str) -> None:
    d, c = dash()
    s = Stream(c.port)
    try:
        assert s.resp.status == 200 and s.resp.getheader("Content-Type").startswith("text/event-stream")
        first = s.frames(lambda f: "retry" in f)
        assert first[-1]["retry"] == "3000"
        queue.pause_queue("here", reason="this process")
        env = {k: v for k, v in os.environ.items() if not k.startswith("DJOBS_")}
        exe = str(Path(sys.executable).with_name("djobs"))
        subprocess.run([exe, "--database", db_url, "pause", "queue", "elsewhere", "--force"], check=True, env=env, timeout=60)
        got = s.frames(lambda f: (e := _event(f)) is not None and e["queue"] == "elsewhere")
        events = [e for f in got if (e := _event(f))]
        assert [(e["kind"], e["queue"]) for e in events] == [("queue_paused", "here"), ("queue_paused", "elsewhere")]
        assert [int(f["id"]) for f in got if _event(f)] == [e["id"] for e in events]
        assert d.hub.streams == 1
    finally:
        s.close()
    wait_for(lambda: d.hub.streams == 0, "the stream's slot given back")


def test_a_reconnecting_stream_gets_what_it_missed_once(dash: Any, queue: djobs.Queue) -> None:
    d, c = dash()
    queue.pause_queue("a")
    queue.pause_queue("b")
    queue.pause_queue("c")
    ids = [e.id for e in queue.events_since(0)]
    s = Stream(c.port, headers={"Last-Event-ID": str(ids[0])})
    try:
        got = s.frames(lambda f: (e := _event(f)) is not None and e["queue"] == "c")
        assert [int(f["id"]) for f in got if _event(f)] == ids[1:]
        queue.pause_queue("d")
        more = s.frames(lambda f: _event(f) is not None)
        assert [_event(f)["queue"] for f in more if _event(f)] == ["d"]  # type: ignore[index]
    finally:
        s.close()
    filtered = Stream(c.port, "/api/stream?queue=b&after=0")
    try:
        got = filtered.frames(lambda f: _event(f) is not None)
        assert [(_event(f) or {}).get("queue") for f in got if _event(f)] == ["b"]
    finally:
        filtered.close()
    assert c.get("/api/stream", headers={"Last-Event-ID": "abc"}).status == 400


def test_streams_are_bounded_beat_and_end_with_the_dashboard(dash: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(live, "HEARTBEAT", 0.3)
    d, c = dash(max_streams=2)
    a, b = Stream(c.port), Stream(c.port)
    try:
        a.frames(lambda f: "retry" in f)
        b.frames(lambda f: "retry" in f)
        r = c.get("/api/stream")
        assert r.status == 503 and r.headers["retry-after"] == "30" and "api/events" in r.json["error"]
        assert a.frames(lambda f: "ping" in f.get("comment", []), timeout=10)
        b.close()
        wait_for(lambda: d.hub.streams == 1, "a closed stream frees its slot")
        third = Stream(c.port)
        third.frames(lambda f: "retry" in f)
        d.hub.close()  # the dashboard goes away: open streams end
        for s in (a, third):
            deadline = time.monotonic() + TIMEOUT
            while s.resp.readline():
                assert time.monotonic() < deadline, "stream did not end"
    finally:
        for s in (a, b):
            s.close()
    wait_for(lambda: d.hub.streams == 0, "every slot given back")


def test_bulk_retry_and_cancel_report_each_job(dash: Any, queue: djobs.Queue) -> None:
    @queue.handler("noop")
    def noop(args: Any) -> None:
        pass

    pending = [queue.enqueue("noop", {"i": i}, delay=3600) for i in range(3)]
    _, c = dash()
    r = c.post("/api/jobs/bulk", {"action": "cancel", "ids": [*pending, "ghost"], "reason": "spring cleaning"})
    assert r.status == 200
    assert r.json["done"] == pending and r.json["skipped"] == [{"id": "ghost", "reason": "no such job"}]
    assert all(queue.get_job(i).status == "cancelled" for i in pending)  # type: ignore[union-attr]
    again = c.post("/api/jobs/bulk", {"action": "cancel", "ids": pending[:1]}).json
    assert again["done"] == [] and "cancelled" in again["skipped"][0]["reason"]
    r = c.post("/api/jobs/bulk", {"action": "retry", "ids": pending[:2]})
    assert r.json["done"] == pending[:2]
    assert [queue.get_job(i).status for i in pending] == ["pending", "pending", "cancelled"]  # type: ignore[union-attr]
    for body in ({"action": "explode", "ids": pending}, {"action": "retry"}, {"action": "retry", "ids": []},
                 {"action": "retry", "ids": ["x"] * 501}, {"action": "retry", "ids": [1]},
                 {"action": "retry", "ids": ["a\x00"]}, {"action": "retry", "ids": pending, "extra": 1}, ["x"]):  # fmt: skip
        assert c.post("/api/jobs/bulk", body).status == 400, body
    assert [queue.get_job(i).status for i in pending] == ["pending", "pending", "cancelled"]  # type: ignore[union-attr]


def test_workflow_tree_has_steps_and_sub_jobs(dash: Any, queue: djobs.Queue) -> None:
    @queue.handler("leaf")
    def leaf(args: Any) -> int:
        return int(args["n"]) * 2

    @queue.handler("flow")
    def flow(ctx: djobs.Context, args: Any) -> Any:
        ctx.call("leaf", {"n": 1})
        ctx.save_checkpoint("halfway", {"ok": True})
        return djobs.values(ctx.fan_out([djobs.Sub("leaf", {"n": 2}), djobs.Sub("leaf", {"n": 3})]))

    root = queue.enqueue("flow", None)
    w = queue.worker(poll_interval=0.05)
    w.start()
    try:
        assert queue.result(root, timeout=TIMEOUT) == [4, 6]
    finally:
        w.stop(timeout=5)
    _, c = dash()
    tree = c.get(f"/api/jobs/{root}/workflow").json
    node = tree["root"]
    assert node["job"]["id"] == root and node["job"]["status"] == "completed" and tree["ancestors"] == []
    kinds = [(s["kind"], s["name"]) for s in node["steps"]]
    assert ("call", "leaf") in kinds and ("checkpoint", "halfway") in kinds and ("fanout", "fan_out") in kinds
    assert kinds.index(("call", "leaf")) < kinds.index(("fanout", "fan_out"))  # in call order
    assert sorted(ch["job"]["args_preview"] for ch in node["children"]) == ['{"n":2}', '{"n":3}']
    assert all(ch["job"]["status"] == "completed" and ch["steps"] == [] for ch in node["children"])
    assert [e["kind"] for e in node["events"]][0] == "job_started"
    child = node["children"][0]["job"]["id"]
    below = c.get(f"/api/jobs/{child}/workflow").json
    assert [a["id"] for a in below["ancestors"]] == [root]
    assert c.get("/api/jobs/nope/workflow").status == 404
    assert c.get(f"/api/jobs/{root}/workflow?depth=99").status == 400


def test_embedding_without_an_authorizer_serves_nobody(store: Any, queue: djobs.Queue) -> None:
    def serve(app: Any) -> tuple[Client, Server]:
        srv = Server(app, "127.0.0.1", 0, threads=4).start()
        return Client(srv.port, token=None), srv

    calls: list[str] = []

    def staff_only(environ: dict[str, Any]) -> bool:
        calls.append(environ.get("PATH_INFO", ""))
        return environ.get("HTTP_X_USER") == "staff"

    def broken(environ: dict[str, Any]) -> bool:
        raise RuntimeError("session store down")

    servers = []
    try:
        c, srv = serve(djobs.ui.app(store, queue=queue))
        servers.append(srv)
        r = c.get("/api/overview")
        assert r.status == 403 and "authorizer=" in r.json["error"]
        assert c.post("/api/queues/q/pause").status == 403 and c.get("/").status == 403
        assert c.get("/healthz").status == 200

        c, srv = serve(djobs.ui.app(store, queue=queue, authorizer=staff_only))
        servers.append(srv)
        assert c.get("/api/overview").status == 403
        assert c.post("/api/queues/q/pause", headers={"X-User": "guest"}).status == 403
        assert c.get("/api/overview", headers={"X-User": "staff"}).status == 200
        assert c.post("/api/queues/q/pause", headers={"X-User": "staff"}).status == 200
        assert calls == ["/api/overview", "/api/queues/q/pause", "/api/overview", "/api/queues/q/pause"]

        c, srv = serve(djobs.ui.app(store, queue=queue, authorizer=broken))
        servers.append(srv)
        r = c.get("/api/overview")
        assert r.status == 500 and "session store" not in r.text  # fails closed, says nothing of the cause
        with pytest.raises(ValueError, match="16"):
            djobs.ui.app(store, token="short")
    finally:
        for s in servers:
            s.close()
    assert queue.paused_queues() == ["q"]


def test_many_pages_share_one_reader_of_the_log(dash: Any, queue: djobs.Queue) -> None:
    def readers() -> set[threading.Thread]:
        return {t for t in threading.enumerate() if t.name == "djobs-ui-events"}

    before = readers()  # an earlier test's dashboard may still be closing its own
    d, c = dash(max_streams=6)
    streams = [Stream(c.port) for _ in range(5)]
    try:
        for s in streams:
            s.frames(lambda f: "retry" in f)
        assert len(readers() - before) == 1
        queue.pause_queue("everyone")
        for s in streams:
            s.frames(lambda f: (e := _event(f)) is not None and e["queue"] == "everyone")
    finally:
        for s in streams:
            s.close()
    wait_for(lambda: d.hub.streams == 0, "slots given back")
    wait_for(lambda: not d.hub.following, "the reader stops with the last page")
    again = Stream(c.port)  # and starts again, on the same thread, for the next page
    try:
        again.frames(lambda f: "retry" in f)
        queue.pause_queue("again")
        again.frames(lambda f: (e := _event(f)) is not None and e["queue"] == "again")
        assert len(readers() - before) == 1
    finally:
        again.close()


def test_bulk_delete_and_purge_a_queue(dash: Any, queue: djobs.Queue) -> None:
    @queue.handler("noop")
    def noop(args: Any) -> None:
        pass

    @queue.handler("mail", queue="emails")
    def mail(args: Any) -> None:
        pass

    done = [queue.enqueue("noop", {"i": i}) for i in range(3)]
    mails = [queue.enqueue("mail", {"i": i}) for i in range(2)]
    waiting = queue.enqueue("noop", None, delay=3600)
    w = queue.worker(queues={"default": 2, "emails": 1}, poll_interval=0.05)
    w.start()
    try:
        wait_for(lambda: all(queue.get_job(i).status.terminal for i in done + mails), "the jobs run")  # type: ignore[union-attr]
    finally:
        w.stop(timeout=5)
    _, c = dash()
    r = c.post("/api/jobs/bulk", {"action": "delete", "ids": [done[0], done[1], waiting, "ghost"]})
    assert r.status == 200 and r.json["deleted"] == 2 and r.json["skipped"] == 2 and "cancel" in r.json["note"]
    assert queue.get_job(done[0]) is None and queue.get_job(waiting) is not None
    assert c.get(f"/api/jobs/{done[0]}").status == 404
    for body in ({"statuses": ["pending"]}, {"statuses": []}, {"older_than": -1}, {"extra": 1}, [1], {"statuses": "completed"}):
        assert c.post("/api/queues/emails/purge", body).status == 400, body
    assert c.call("POST", "/api/queues/emails/purge", raw=b'{"older_than": 1e400}').status == 400
    assert c.post("/api/queues/emails/purge", {"older_than": 3600}).json["deleted"] == 0  # finished just now
    assert c.post("/api/queues/emails/purge", {"statuses": ["failed"]}).json["deleted"] == 0
    r = c.post("/api/queues/emails/purge")
    assert r.status == 200 and r.json["deleted"] == 2 and all(queue.get_job(m) is None for m in mails)
    assert queue.get_job(done[2]) is not None  # another queue's jobs stay
    assert c.post("/api/queues/default/purge").json["deleted"] == 1
    assert queue.get_job(waiting) is not None  # unfinished jobs are never purged
    page = c.get("/api/jobs").json
    assert page["total"] == 1 and [j["id"] for j in page["jobs"]] == [waiting]
