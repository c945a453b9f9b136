"""The web dashboard (`djobs.ui.app`) over real HTTP, against real databases (SQLite and PostgreSQL).

Each test serves the WSGI app with waitress on a thread (as `djobs ui` does) and talks to it with
`http.client` (no redirects followed, so the mount-point redirect can be checked), sending the token as a
bearer credential. Workers run in-process (`queue.worker().start()`). Waits poll a condition with a
generous timeout; nothing asserts on wall-clock time.
"""

from __future__ import annotations

import re
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
from browser.support import TIMEOUT, TOKEN, Client, Proxy, wait_for

import djobs
import djobs.ui
from djobs.ui.app import DB_THREADS
from djobs.ui.server import Server

# ---- serving and calling ----


@pytest.fixture
def serve() -> Iterator[Callable[..., Client]]:
    """serve(wsgi_app) -> Client. Servers are stopped afterwards."""
    servers: list[Server] = []

    def start(application: Any, prefix: str = "", token: str | None = TOKEN, threads: int = 8) -> Client:
        srv = Server(application, "127.0.0.1", 0, threads=threads).start()
        servers.append(srv)
        return Client(srv.port, prefix, token=token)

    yield start
    for srv in servers:
        srv.close()


@pytest.fixture
def dashboards() -> Iterator[list[djobs.ui.Dashboard]]:
    """Dashboards built by `make_app`, closed at teardown (each holds a few database threads)."""
    made: list[djobs.ui.Dashboard] = []
    yield made
    for d in made:
        d.close()


@pytest.fixture
def make_app(store: Any, jq: djobs.Queue, dashboards: list[djobs.ui.Dashboard]) -> Callable[..., Any]:
    def build(**kw: Any) -> Any:
        def capture(inner: Any) -> Any:  # innermost middleware: sees the Dashboard itself
            dashboards.append(inner)
            return inner

        kw.setdefault("queue", jq)
        if "authorizer" not in kw:
            kw.setdefault("token", TOKEN)
        kw["middleware"] = [*kw.get("middleware", []), capture]
        return djobs.ui.app(kw.pop("store", store), **kw)

    return build


@pytest.fixture
def client(serve: Callable[..., Client], make_app: Callable[..., Any]) -> Client:
    return serve(make_app())


@pytest.fixture
def workers() -> Iterator[list[Any]]:
    started: list[Any] = []
    yield started
    for w in started:
        w.stop(timeout=5)


# ---- handlers ----


@dataclass
class Point:
    x: int
    y: int


@pytest.fixture
def jq(queue: djobs.Queue) -> djobs.Queue:
    """The test queue with the handlers every test uses."""

    @queue.handler("hello")
    def hello(args: dict[str, Any]) -> str:
        return f"hello {args['name']}"

    @queue.handler("boom", retries=0)
    def boom(args: Any) -> None:
        raise djobs.NoRetry("boom refused")

    @queue.handler("point", queue="geo")
    def point(args: Point) -> int:
        return args.x + args.y

    @queue.handler("steps")
    def steps(ctx: djobs.Context, args: Any) -> Any:
        ctx.save_checkpoint("phase", {"n": 1})
        ctx.progress(1, 2, "half way")
        results = ctx.fan_out([djobs.Sub("hello", {"name": "a"}), djobs.Sub("hello", {"name": "b"})])
        return djobs.values(results)

    @queue.handler("block", retries=0)
    def block(ctx: djobs.Context, args: Any) -> None:
        deadline = time.monotonic() + TIMEOUT
        while not ctx.cancelled and time.monotonic() < deadline:
            time.sleep(0.02)
        ctx.raise_if_cancelled()

    return queue


def start_worker(q: djobs.Queue, workers: list[Any], **kw: Any) -> Any:
    kw.setdefault("queues", {"default": 4, "geo": 2})
    w = q.worker(poll_interval=0.05, **kw)
    w.start()
    workers.append(w)
    return w


def iso(text: str) -> datetime:
    value = datetime.fromisoformat(text)
    assert value.tzinfo is not None, text
    return value


# ---- the page ----


def test_index_is_one_self_contained_page(client: Client) -> None:
    r = client.get("/")
    assert r.status == 200
    assert r.headers["content-type"].startswith("text/html")
    page = r.text
    # Self-contained: its one script and one stylesheet come from beside it, nothing from elsewhere.
    assert re.findall(r"<(?:script|link|img|iframe)[^>]*\b(?:src|href)=\"([^\"]*)\"", page) == ["dashboard.css", "dashboard.js"]
    assert "<script>" not in page and "style=" not in page
    csp = r.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "script-src 'self'" in csp and "style-src 'self'" in csp
    assert "unsafe-inline" not in csp and "frame-ancestors 'self'" in csp
    script = client.get("/dashboard.js")
    assert script.status == 200 and script.headers["content-type"].startswith("text/javascript")
    js = script.text
    assert not re.search(r"""(fetch\(\s*["'`]/|["'`]/api)""", js)  # every call relative to the page
    assert 'fetch("api/" + path' in js and 'new EventSource("api/stream"' in js
    for endpoint in ("overview", "jobs?", "events", "stats", "/cancel", "/retry", "/pause", "/resume", "queues/", "workers/", "schedules/", "jobs/bulk", "/purge", "/workflow"):
        assert endpoint in js, endpoint
    css = client.get("/dashboard.css")
    assert css.status == 200 and css.headers["content-type"].startswith("text/css")
    assert "@import" not in css.text and "url(" not in css.text
    head = client.call("HEAD", "/")
    assert head.status == 200 and head.raw == b""
    assert client.post("/dashboard.js").status == 405


# ---- reads ----


def test_overview_lists_queues_workers_and_schedules(client: Client, jq: djobs.Queue, workers: list[Any]) -> None:
    jq.enqueue("hello", {"name": "x"})
    jq.enqueue("point", Point(1, 2), delay=3600)
    jq.pause_queue("geo", reason="maintenance")
    jq.schedule("hello", djobs.every(timedelta(minutes=5)), args={"name": "cron"}, name="tick")
    w = start_worker(jq, workers, queues={"default": 2})
    wait_for(lambda: jq.get_job(jq.list_jobs(type="hello")[0].id).status == "completed", "hello completed")  # type: ignore[union-attr]

    r = client.get("/api/overview")
    assert r.status == 200
    ov = r.json
    queues = {q["name"]: q for q in ov["queues"]}
    assert queues["default"]["counts"] == {"completed": 1} and queues["default"]["paused"] is False
    assert queues["geo"]["counts"] == {"pending": 1}
    assert queues["geo"]["paused"] is True and queues["geo"]["pause_reason"] == "maintenance"
    iso(queues["geo"]["paused_at"])
    [winfo] = [x for x in ov["workers"] if x["id"] == w.id]
    assert winfo["alive"] is True and winfo["queues"] == {"default": 2} and "hello" in winfo["handlers"]
    iso(winfo["last_heartbeat_at"])
    [sched] = ov["schedules"]
    assert sched["name"] == "tick" and sched["job"] == "hello" and sched["args"] == {"name": "cron"}
    assert iso(sched["next_fire"]) > datetime.now(UTC)
    assert {"hello", "boom", "point", "steps", "block"} <= set(ov["job_types"])
    assert ov["latest_event_id"] >= 2  # queue_paused, job_started, job_completed


def test_jobs_list_filters_pages_and_rejects_bad_parameters(client: Client, jq: djobs.Queue) -> None:
    ids = [jq.enqueue("hello", {"name": str(i)}) for i in range(5)]
    geo = jq.enqueue("point", {"x": 1, "y": 2})
    jq.cancel_job(ids[0])

    everything = client.get("/api/jobs").json
    order = [j.id for j in jq.list_jobs()]  # newest first (jobs made in one millisecond tie on time)
    assert [j["id"] for j in everything["jobs"]] == order and set(order) == {geo, *ids}
    assert everything["has_more"] is False

    page1 = client.get("/api/jobs?limit=2").json
    page2 = client.get("/api/jobs?limit=2&offset=2").json
    page3 = client.get("/api/jobs?limit=2&offset=4").json
    assert [j["id"] for j in page1["jobs"] + page2["jobs"] + page3["jobs"]] == order
    assert page1["has_more"] and page2["has_more"] and not page3["has_more"]

    assert [j["id"] for j in client.get("/api/jobs?queue=geo").json["jobs"]] == [geo]
    assert [j["id"] for j in client.get("/api/jobs?type=point").json["jobs"]] == [geo]
    cancelled = client.get("/api/jobs?status=cancelled").json["jobs"]
    assert [j["id"] for j in cancelled] == [ids[0]]
    assert cancelled[0]["status"] == "cancelled" and cancelled[0]["args_preview"] == '{"name":"0"}'
    assert "args" not in cancelled[0] and "result" not in cancelled[0]  # summaries, not whole jobs
    iso(cancelled[0]["created_at"])
    assert client.get("/api/jobs?status=pending&type=hello&queue=default&limit=3").json["has_more"] is True

    for bad in ("status=nope", "limit=0", "limit=abc", "limit=100000", "offset=-1", "offset=" + "9" * 40, "queue=a%00b"):
        r = client.get(f"/api/jobs?{bad}")
        assert r.status == 400, bad
        assert r.json["error"], bad


def test_job_detail_has_checkpoints_sub_jobs_events_and_why(
    client: Client, jq: djobs.Queue, workers: list[Any]
) -> None:
    job_id = jq.enqueue("steps", None)
    pending = client.get(f"/api/jobs/{job_id}").json
    assert pending["job"]["status"] == "pending" and pending["checkpoints"] == [] and pending["sub_jobs"] == []
    assert pending["why"], "a pending job with no worker has a reason"

    start_worker(jq, workers)
    assert jq.result(job_id, timeout=TIMEOUT) == ["hello a", "hello b"]
    d = client.get(f"/api/jobs/{job_id}").json
    assert d["job"]["id"] == job_id and d["job"]["status"] == "completed"
    assert d["job"]["result"] == ["hello a", "hello b"]
    assert d["job"]["progress"]["message"] == "half way"
    assert {"name": "phase", "value": {"n": 1}} in [{"name": c["name"], "value": c["value"]} for c in d["checkpoints"]]
    assert d["sub_jobs_total"] == 2
    assert sorted(s["args_preview"] for s in d["sub_jobs"]) == ['{"name":"a"}', '{"name":"b"}']
    assert all(s["parent_id"] == job_id and s["status"] == "completed" for s in d["sub_jobs"])
    kinds = [e["kind"] for e in d["events"]]
    assert kinds[0] == "job_started" and kinds[-1] == "job_completed" and "custom:progress" in kinds
    assert all(e["job_id"] == job_id for e in d["events"])
    iso(d["events"][0]["timestamp"])

    r = client.get("/api/jobs/no-such-job")
    assert r.status == 404 and "no-such-job" in r.json["error"]


def test_events_cursor_limit_and_filters(client: Client, jq: djobs.Queue) -> None:
    a = jq.enqueue("hello", {"name": "a"})
    b = jq.enqueue("hello", {"name": "b"})
    for name in ("q1", "q2", "q3"):
        jq.pause_queue(name)
    jq.cancel_job(a)
    jq.cancel_job(b)

    everything = client.get("/api/events?after=0&limit=1000").json
    kinds = [e["kind"] for e in everything["events"]]
    assert kinds == ["queue_paused"] * 3 + ["job_cancelled"] * 2
    ids = [e["id"] for e in everything["events"]]
    assert ids == sorted(ids) and everything["cursor"] == ids[-1] == everything["latest"]

    first = client.get("/api/events?after=0&limit=2").json
    assert [e["id"] for e in first["events"]] == ids[:2] and first["cursor"] == ids[1]
    rest = client.get(f"/api/events?after={first['cursor']}&limit=10").json
    assert [e["id"] for e in rest["events"]] == ids[2:]
    assert client.get(f"/api/events?after={ids[-1]}").json == {"events": [], "cursor": ids[-1], "latest": ids[-1]}

    newest = client.get("/api/events?limit=2").json  # no cursor: the newest events
    assert [e["id"] for e in newest["events"]] == ids[-2:]
    by_job = client.get(f"/api/events?after=0&job_id={b}").json["events"]
    assert [(e["kind"], e["job_id"]) for e in by_job] == [("job_cancelled", b)]
    by_queue = client.get("/api/events?after=0&queue=q2").json["events"]
    assert [(e["kind"], e["queue"]) for e in by_queue] == [("queue_paused", "q2")]
    for bad in ("after=x", "after=-1", "limit=0", "limit=5000"):
        assert client.get(f"/api/events?{bad}").status == 400, bad


def test_stats_counts_outcomes_per_queue(client: Client, jq: djobs.Queue, workers: list[Any]) -> None:
    assert client.get("/api/stats").json["queues"] == {}
    ids = [jq.enqueue("hello", {"name": str(i)}) for i in range(3)]
    ids.append(jq.enqueue("boom", None))
    ids.append(jq.enqueue("point", {"x": 2, "y": 3}))
    start_worker(jq, workers)
    wait_for(lambda: all(j.is_terminal for j in jq.list_jobs()), "every job finished")
    wait_for(lambda: client.get("/api/stats").json["queues"].get("geo", {}).get("totals", {}).get("completed"), "stats")

    s = client.get("/api/stats").json
    assert s["kinds"] == ["started", "completed", "failed", "retried", "cancelled"]
    assert s["window_seconds"] == 3600 and s["bucket_seconds"] == 60 and s["retention_seconds"] == 7 * 86400
    assert s["queues"]["default"]["totals"] == {"started": 4, "completed": 3, "failed": 1, "retried": 0, "cancelled": 0}
    assert s["queues"]["geo"]["totals"]["completed"] == 1
    series = s["queues"]["default"]["series"]
    assert len(series) == 60 and sum(p["completed"] for p in series) == 3
    assert iso(series[0]["t"]) == iso(s["from"]) and iso(series[-1]["t"]) < iso(s["to"]) <= iso(series[-1]["t"]) + timedelta(minutes=1)

    # Polled again, it only adds what is new (and counts nothing twice).
    jq.cancel_job(jq.enqueue("hello", {"name": "late"}, delay=3600))
    again = client.get("/api/stats").json["queues"]["default"]["totals"]
    assert again == {"started": 4, "completed": 3, "failed": 1, "retried": 0, "cancelled": 1}

    only = client.get("/api/stats?queue=geo&window=600&bucket=120").json
    assert list(only["queues"]) == ["geo"] and only["bucket_seconds"] == 120 and len(only["queues"]["geo"]["series"]) == 5
    assert client.get("/api/stats?window=604800&bucket=60").status == 400  # over 1000 points
    assert client.get("/api/stats?window=abc").status == 400


def test_stats_window_is_bounded_by_retention(
    serve: Callable[..., Client], make_app: Callable[..., Any], jq: djobs.Queue, workers: list[Any]
) -> None:
    c = serve(make_app(stats_retention=timedelta(seconds=4)))
    job_id = jq.enqueue("hello", {"name": "x"})
    start_worker(jq, workers)
    jq.result(job_id, timeout=TIMEOUT)
    s = c.get("/api/stats?window=3600").json
    assert s["window_seconds"] == 4 and s["retention_seconds"] == 4 and s["bucket_seconds"] == 1
    assert s["queues"]["default"]["totals"]["completed"] == 1
    time.sleep(4.5)
    assert c.get("/api/stats?window=3600").json["queues"] == {}


def test_stats_read_a_big_log_in_steps_and_look_back_a_bounded_number_of_events(
    serve: Callable[..., Client], store: Any, jq: djobs.Queue, dashboards: list[djobs.ui.Dashboard]
) -> None:
    for i in range(10):
        jq.cancel_job(jq.enqueue("hello", {"name": str(i)}, delay=3600))
    stepwise = djobs.ui.Dashboard(store, queue=jq, token=TOKEN)
    stepwise.stats.PAGE = stepwise.stats.max_read = 4  # type: ignore[misc]
    bounded = djobs.ui.Dashboard(store, queue=jq, token=TOKEN)
    bounded.stats.initial_scan = 3
    dashboards += [stepwise, bounded]
    c1, c2 = serve(stepwise), serve(bounded)

    seen = []
    for _ in range(3):
        s = c1.get("/api/stats").json
        seen.append((s["queues"]["default"]["totals"]["cancelled"], s["complete"]))
    assert seen == [(4, False), (8, False), (10, True)]
    assert c1.get("/api/stats").json["queues"]["default"]["totals"]["cancelled"] == 10

    s = c2.get("/api/stats").json
    assert s["queues"]["default"]["totals"]["cancelled"] == 3 and s["complete"] is True
    # Coverage starts at the oldest event read, not at the retention horizon.
    assert iso(s["covered_from"]) > datetime.now(UTC) - timedelta(minutes=5)


def test_stats_count_an_event_that_commits_after_a_newer_one(
    db_url: str, client: Client, store: Any, jq: djobs.Queue
) -> None:
    if db_url.startswith("sqlite"):
        pytest.skip("SQLite commits one writer at a time: event ids always become visible in order")
    early, late = jq.enqueue("hello", {"name": "e"}, delay=3600), jq.enqueue("hello", {"name": "l"}, delay=3600)
    holding, release = threading.Event(), threading.Event()

    def slow_cancel() -> None:
        with store.tx():  # the event id is taken now, but becomes visible only at commit
            jq.cancel_job(early)
            holding.set()
            release.wait(TIMEOUT)

    t = threading.Thread(target=slow_cancel)
    t.start()
    try:
        assert holding.wait(TIMEOUT)
        jq.cancel_job(late)
        assert client.get("/api/stats").json["queues"]["default"]["totals"]["cancelled"] == 1
    finally:
        release.set()
        t.join(TIMEOUT)
    assert [e.kind for e in jq.events_since(0)] == ["job_cancelled", "job_cancelled"]
    assert client.get("/api/stats").json["queues"]["default"]["totals"]["cancelled"] == 2


# ---- actions ----


def test_job_actions_and_their_errors(client: Client, jq: djobs.Queue, workers: list[Any]) -> None:
    job_id = jq.enqueue("hello", {"name": "x"}, delay=3600)

    r = client.post(f"/api/jobs/{job_id}/pause", {"reason": "looking into it"})
    assert r.status == 200 and r.json["job"]["status"] == "paused" and r.json["action"] == "pause"
    assert jq.get_job(job_id).pause_reason == "looking into it"  # type: ignore[union-attr]
    r = client.post(f"/api/jobs/{job_id}/resume")
    assert r.status == 200 and r.json["job"]["status"] == "pending"
    assert client.post(f"/api/jobs/{job_id}/resume").status == 409  # not paused
    assert client.post(f"/api/jobs/{job_id}/retry").status == 409  # not failed or cancelled

    r = client.post(f"/api/jobs/{job_id}/cancel")
    assert r.status == 200 and r.json["job"]["status"] == "cancelled"
    assert jq.get_job(job_id).status == "cancelled"  # type: ignore[union-attr]
    r = client.post(f"/api/jobs/{job_id}/cancel")
    assert r.status == 409 and "cancelled" in r.json["error"] and r.json["job"]["id"] == job_id
    assert client.post(f"/api/jobs/{job_id}/pause").status == 409  # finished
    r = client.post(f"/api/jobs/{job_id}/retry")
    assert r.status == 200 and r.json["job"]["status"] == "pending" and r.json["job"]["attempt"] == 0

    # Aggressive pause stops a running handler; the job waits paused.
    running = jq.enqueue("block", None)
    start_worker(jq, workers)
    wait_for(lambda: jq.get_job(running).status == "running", "block running")  # type: ignore[union-attr]
    assert client.post(f"/api/jobs/{running}/pause?mode=bogus").status == 400
    r = client.post(f"/api/jobs/{running}/pause?mode=aggressive")
    assert r.status == 200 and r.json["job"]["status"] == "paused"
    assert "web UI" in (jq.get_job(running).pause_reason or "")  # type: ignore[union-attr]
    time.sleep(0.3)
    assert jq.get_job(running).status == "paused"  # type: ignore[union-attr]

    for action in ("cancel", "retry", "pause", "resume"):
        r = client.post(f"/api/jobs/nope/{action}")
        assert r.status == 404 and "nope" in r.json["error"], action


def test_queue_worker_and_schedule_actions(client: Client, jq: djobs.Queue, workers: list[Any]) -> None:
    r = client.post("/api/queues/emails/pause")
    assert r.status == 200 and r.json == {"ok": True, "action": "pause", "queue": "emails", "paused": True}
    assert jq.is_queue_paused("emails")
    assert client.post("/api/queues/emails/resume").json["paused"] is False
    assert not jq.is_queue_paused("emails")
    # Names with a slash and non-ASCII characters survive the URL.
    assert client.post("/api/queues/a/b%C3%A9/pause").json["queue"] == "a/bé"
    assert jq.is_queue_paused("a/bé")

    w = start_worker(jq, workers)
    wait_for(lambda: any(x.id == w.id for x in jq.workers()), "worker registered")
    r = client.post(f"/api/workers/{w.id}/pause?mode=aggressive")
    assert r.status == 200 and r.json["worker"] == w.id
    info = next(x for x in jq.workers() if x.id == w.id)
    assert info.paused and info.pause_mode == djobs.PauseMode.AGGRESSIVE
    assert client.post(f"/api/workers/{w.id}/resume").status == 200
    assert not next(x for x in jq.workers() if x.id == w.id).paused
    assert client.post("/api/workers/ghost/pause").status == 404
    assert client.post("/api/workers/ghost/resume").status == 404
    assert client.post(f"/api/workers/{w.id}/pause?mode=sideways").status == 400

    jq.schedule("hello", djobs.every(60), args={"name": "s"}, name="minutely")
    assert client.post("/api/schedules/minutely/pause").status == 200
    assert [s.paused for s in jq.schedules()] == [True]
    assert client.post("/api/schedules/minutely/resume").json == {"ok": True, "action": "resume", "schedule": "minutely"}
    assert [s.paused for s in jq.schedules()] == [False]
    assert client.post("/api/schedules/nope/pause").status == 404
    assert client.post("/api/schedules/nope/resume").status == 404


def test_enqueue_and_its_errors(client: Client, jq: djobs.Queue) -> None:
    r = client.post("/api/jobs", {"type": "point", "args": {"x": 1, "y": 2}, "priority": 7, "delay": 60, "unique": "p:1"})
    assert r.status == 201
    job = r.json["job"]
    assert r.json["id"] == job["id"] and job["type"] == "point" and job["queue"] == "geo" and job["priority"] == 7
    assert job["args"] == {"x": 1, "y": 2} and job["unique_key"] == "p:1" and job["status"] == "pending"
    assert iso(job["run_at"]) > iso(job["created_at"]) + timedelta(seconds=50)
    assert jq.get_job(job["id"]) is not None

    r = client.post("/api/jobs", {"type": "point", "args": {"x": 3, "y": 4}, "unique": "p:1"})
    assert r.status == 409 and r.json["existing_id"] == job["id"]

    at = datetime.now(UTC) + timedelta(hours=2)
    r = client.post("/api/jobs", {"type": "hello", "args": {"name": "q"}, "queue": "other", "retries": 0, "at": at.isoformat()})
    assert r.status == 201 and r.json["job"]["queue"] == "other" and r.json["job"]["max_retries"] == 0
    assert abs((iso(r.json["job"]["run_at"]) - at).total_seconds()) < 1

    bad: list[tuple[Any, str]] = [
        ({"type": "nope", "args": {}}, "unknown job type"),
        ({"type": "point", "args": {"x": "one"}}, "point"),  # does not fit the annotated dataclass
        ({"type": "hello", "args": {"name": "x"}, "priority": "high"}, "priority"),
        ({"type": "hello", "delay": -1}, "delay"),
        ({"type": "hello", "at": "tomorrow"}, "at"),
        ({"type": "hello", "color": "red"}, "color"),
        ({"args": {}}, "type"),
        (["hello"], "object"),
    ]
    for body, word in bad:
        r = client.post("/api/jobs", body)
        assert r.status == 400, body
        assert word in r.json["error"], (body, r.json)
    r = client.post("/api/jobs", raw=b"{not json")
    assert r.status == 400 and "JSON" in r.json["error"]
    assert len(jq.list_jobs()) == 2  # nothing written by the failures


# ---- errors, routing, mounting, middleware ----


def test_unknown_paths_and_methods(client: Client) -> None:
    r = client.get("/api/nothing")
    assert r.status == 404 and r.json["error"]
    r = client.call("DELETE", "/api/jobs")
    assert r.status == 405 and set(r.headers["allow"].split(", ")) == {"GET", "POST"} and r.json["error"]
    r = client.get("/api/jobs/abc/cancel")
    assert r.status == 405 and r.headers["allow"] == "POST"
    assert client.post("/").status == 405
    assert client.post("/api/overview").status == 405


def test_writes_from_other_origins_are_refused_and_nothing_changes(client: Client, jq: djobs.Queue) -> None:
    host = f"127.0.0.1:{client.port}"
    refused = [
        {"Origin": "https://evil.example"},
        {"Origin": "null"},  # sandboxed frames and some redirects
        {"Origin": f"https://{host}"},  # right host, wrong scheme
        {"Origin": f"http://127.0.0.1:{client.port + 1}"},  # right host, wrong port
        {"Origin": "http://jobs.example.com", "X-Forwarded-Host": "jobs.example.com"},  # never trusted by the app
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},
        {"Origin": "garbage"},
    ]
    for headers in refused:
        r = client.post("/api/queues/default/pause", headers=headers)
        assert r.status == 403, headers
        assert r.json["error"], headers
    r = client.post("/api/jobs", {"type": "hello", "args": {"name": "x"}}, headers={"Origin": "null"})
    assert r.status == 403
    assert not jq.is_queue_paused("default") and jq.list_jobs() == [] and jq.events_since(0) == []
    # Our own page (same origin), and scripts that send no Origin at all, may write.
    assert client.post("/api/queues/default/pause", headers={"Origin": f"http://{host}", "Sec-Fetch-Site": "same-origin"}).status == 200
    assert client.post("/api/queues/default/resume").status == 200
    # A cross-site read (a page elsewhere embedding the API) is refused too; a link to the page is not.
    assert client.get("/api/jobs", headers={"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "cors"}).status == 403
    assert client.get("/", headers={"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "navigate"}).status == 200


def test_the_host_header_must_be_one_the_dashboard_serves(
    serve: Callable[..., Client], make_app: Callable[..., Any], jq: djobs.Queue
) -> None:
    c = serve(make_app(allowed_hosts=["jobs.example.com", ".corp.example"]))
    for host in ("evil.example", "evil.example:8080", "jobs.example.com.evil.example", "a b", "[::1"):
        r = c.get("/api/overview", headers={"Host": host})
        assert r.status == 403, host
        assert "--allow-host" in r.json["error"], host
        assert c.post("/api/queues/q/pause", headers={"Host": host}).status == 403, host
    for host in ("localhost", f"127.0.0.1:{c.port}", "[::1]:8080", "jobs.example.com", "JOBS.example.com.", "a.corp.example", "corp.example", "x.localhost"):
        assert c.get("/api/overview", headers={"Host": host}).status == 200, host
    assert not jq.is_queue_paused("q")
    # Probes come from load balancers with the pod's address and no token: they answer anyway.
    r = Client(c.port, token=None).get("/healthz", headers={"Host": "10.1.2.3:8080"})
    assert r.status == 200 and r.json == {"ok": True}
    # Prometheus scrapes by address as well: /metrics skips the Host check but not the token.
    assert c.get("/metrics", headers={"Host": "10.1.2.3:8080"}).status == 200
    assert Client(c.port, token=None).get("/metrics", headers={"Host": "10.1.2.3:8080"}).status == 401


def test_storage_unavailable_is_503_and_recovers(
    db_url: str, serve: Callable[..., Client], make_app: Callable[..., Any]
) -> None:
    if db_url.startswith("sqlite"):
        # A writer holding the SQLite lock past the busy timeout: the database is there but unusable.
        store = djobs.connect(db_url, busy_timeout=0.2)
        c = serve(make_app(store=store, queue=None))
        assert c.get("/api/overview").status == 200
        blocker = sqlite3.connect(db_url.split(":///", 1)[1], isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")
        try:
            r = c.post("/api/queues/default/pause")
            assert r.status == 503 and "lock" in r.json["error"] and r.headers["retry-after"] == "2"
            r = c.post("/api/jobs/x/cancel")  # the read before the write works; the write does not
            assert r.status == 404
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        assert c.post("/api/queues/default/pause").status == 200
        store.close()
        return

    parts = urlsplit(db_url)
    proxy = Proxy((parts.hostname or "127.0.0.1", parts.port or 5432))
    url = urlunsplit(parts._replace(netloc=f"{parts.username}@127.0.0.1:{proxy.port}"))
    store = djobs.connect(url, connect_timeout=2)
    try:
        c = serve(make_app(store=store, queue=None))
        assert c.get("/api/overview").status == 200
        proxy.stop()
        for path in ("/api/overview", "/api/jobs", "/api/stats", "/api/events"):
            r = c.get(path)
            assert r.status == 503, path
            assert "database" in r.json["error"] and r.headers["retry-after"] == "2"
        assert c.post("/api/queues/default/pause").status == 503
        proxy = Proxy(proxy.target, proxy.port)  # the server is back
        wait_for(lambda: c.get("/api/overview").status == 200, "recovery")
        assert c.post("/api/queues/default/pause").status == 200
    finally:
        proxy.stop()
        store.close()


def test_a_thread_per_request_server_does_not_multiply_connections(
    db_url: str, make_app: Callable[..., Any]
) -> None:
    import socketserver
    import uuid
    from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

    class ThreadingServer(socketserver.ThreadingMixIn, WSGIServer):
        daemon_threads = True

    class _QuietHandler(WSGIRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
            pass

    tag = "djobs_ui_" + uuid.uuid4().hex[:8]
    url = db_url + ("&" if "?" in db_url else "?") + f"application_name={tag}" if db_url.startswith("postgres") else db_url
    store = djobs.connect(url)
    earlier = {t for t in threading.enumerate() if t.name.startswith("djobs-ui")}  # an earlier test's, closing
    srv = make_server("127.0.0.1", 0, make_app(store=store, queue=None), server_class=ThreadingServer, handler_class=_QuietHandler)
    threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    c = Client(srv.server_port)
    try:
        statuses: list[int] = []

        def hammer() -> None:
            for path in ("/api/overview", "/api/jobs", "/api/events", "/api/stats") * 3:
                statuses.append(c.get(path).status)

        clients = [threading.Thread(target=hammer) for _ in range(8)]
        for t in clients:
            t.start()
        for t in clients:
            t.join(TIMEOUT)
        assert statuses == [200] * 96
        ui_threads = [t for t in threading.enumerate() if t.name.startswith("djobs-ui") and t not in earlier]
        assert 1 <= len(ui_threads) <= DB_THREADS
        if db_url.startswith("postgres"):
            import psycopg

            with psycopg.connect(db_url.split("?", 1)[0], autocommit=True) as conn:
                row = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", (tag,)).fetchone()
            assert row is not None and 1 <= row[0] <= DB_THREADS + 1  # + the one connect() opened here
    finally:
        srv.shutdown()
        srv.server_close()
        store.close()


def test_mounted_under_a_prefix(serve: Callable[..., Client], make_app: Callable[..., Any], jq: djobs.Queue) -> None:
    dashboard = make_app()

    def site(environ: dict[str, Any], start_response: Any) -> Any:
        """A dispatcher that mounts the dashboard at /admin/jobs, moving the prefix into SCRIPT_NAME."""
        path = environ.get("PATH_INFO", "")
        if path == "/admin/jobs" or path.startswith("/admin/jobs/"):
            environ["SCRIPT_NAME"] = environ.get("SCRIPT_NAME", "") + "/admin/jobs"
            environ["PATH_INFO"] = path[len("/admin/jobs") :]
            return dashboard(environ, start_response)
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"site page"]

    c = serve(site)
    r = c.get("/admin/jobs?x=1")
    assert r.status == 301 and r.headers["location"] == "/admin/jobs/?x=1"  # so relative links resolve inside
    r = c.get("/admin/jobs/")
    assert r.status == 200 and "<title>djobs</title>" in r.text
    job_id = jq.enqueue("hello", {"name": "m"})
    assert [j["id"] for j in c.get("/admin/jobs/api/jobs").json["jobs"]] == [job_id]
    assert c.post(f"/admin/jobs/api/jobs/{job_id}/cancel").json["job"]["status"] == "cancelled"
    assert c.get("/api/jobs").raw == b"site page"  # nothing leaks outside the mount point


def test_middleware_wraps_in_order_first_outermost(
    serve: Callable[..., Client], make_app: Callable[..., Any], jq: djobs.Queue
) -> None:
    calls: list[str] = []

    def auth(inner: Any) -> Any:
        def mw(environ: dict[str, Any], start_response: Any) -> Any:
            calls.append("auth")
            if environ.get("HTTP_AUTHORIZATION") != "Bearer s3cret":
                start_response("401 Unauthorized", [("Content-Type", "application/json")])
                return [b'{"error": "login required"}']
            environ["REMOTE_USER"] = "alice"
            return inner(environ, start_response)

        return mw

    def tag(inner: Any) -> Any:
        def mw(environ: dict[str, Any], start_response: Any) -> Any:
            calls.append("tag")

            def sr(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
                return start_response(status, [*headers, ("X-Seen-By", "tag")], exc_info)

            return inner(environ, sr)

        return mw

    c = serve(make_app(middleware=[auth, tag], authorizer=djobs.ui.allow_all), token=None)
    for path in ("/", "/api/overview"):
        assert c.get(path).status == 401, path
    assert c.post("/api/queues/default/pause").status == 401
    assert not jq.is_queue_paused("default")
    assert calls == ["auth"] * 3  # the first middleware runs first and can stop everything

    calls.clear()
    good = {"Authorization": "Bearer s3cret"}
    r = c.get("/api/overview", headers=good)
    assert r.status == 200 and r.headers["x-seen-by"] == "tag"
    assert calls == ["auth", "tag"]
    assert c.post("/api/queues/default/pause", headers=good).status == 200
    assert jq.queue_stats()[0].pause_reason == "paused from the web UI by alice"  # REMOTE_USER is recorded


# ---- end to end ----


def test_enqueue_run_and_watch_it_complete(client: Client, jq: djobs.Queue, workers: list[Any]) -> None:
    r = client.post("/api/jobs", {"type": "hello", "args": {"name": "web"}})
    assert r.status == 201
    job_id = r.json["id"]
    assert client.get(f"/api/jobs/{job_id}").json["job"]["status"] == "pending"
    cursor = client.get("/api/events").json["cursor"]

    w = jq.worker(poll_interval=0.05)
    w.start()
    workers.append(w)
    done = wait_for(
        lambda: (d := client.get(f"/api/jobs/{job_id}").json)["job"]["status"] == "completed" and d, "completed via the API"
    )
    w.stop(timeout=5)
    assert done["job"]["result"] == "hello web" and done["job"]["attempt"] == 1
    assert [e["kind"] for e in done["events"]] == ["job_started", "job_completed"]
    assert done["why"] and "completed" in done["why"][0]
    assert [j["id"] for j in client.get("/api/jobs?status=completed").json["jobs"]] == [job_id]
    new = client.get(f"/api/events?after={cursor}").json["events"]
    assert [(e["kind"], e["job_id"]) for e in new if e["job_id"]] == [("job_started", job_id), ("job_completed", job_id)]
    stats = wait_for(lambda: client.get("/api/stats").json["queues"].get("default"), "stats row")
    assert stats["totals"]["completed"] == 1
    [q] = client.get("/api/overview").json["queues"]
    assert q["name"] == "default" and q["counts"] == {"completed": 1} and q["completed_last_minute"] == 1
