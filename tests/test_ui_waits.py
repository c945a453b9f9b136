"""The web API's view of waiting jobs, limits and meta, over real HTTP against both backends.

Sleeping and signal-waiting jobs are parked as the library parks them (status `waiting`, `wait_kind`,
`wait_signal`, `run_at`) with SQL on the row; a fan-out parent is made by a real worker.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import pytest
from browser.support import TOKEN, Client
from dbsql import sql

import djobs
import djobs.ui
from djobs.ui.server import Server

WAIT_FOREVER = 253402300799.0


@pytest.fixture
def serve(store: Any) -> Iterator[Callable[[djobs.Queue], Client]]:
    """serve(queue) -> a Client of a dashboard over it, closed afterwards."""
    running: list[tuple[Server, Any]] = []

    def start(queue: djobs.Queue) -> Client:
        dashboards: list[Any] = []

        def capture(inner: Any) -> Any:
            dashboards.append(inner)
            return inner

        application = djobs.ui.app(store, queue=queue, token=TOKEN, middleware=[capture])
        srv = Server(application, "127.0.0.1", 0, threads=4).start()
        running.append((srv, dashboards[0]))
        return Client(srv.port, "", token=TOKEN)

    yield start
    for srv, dashboard in running:
        srv.close()
        dashboard.close()


def park(store: Any, job_id: str, kind: str, run_at: float, signal: str | None = None) -> None:
    sql(
        store,
        "UPDATE djobs_jobs SET status = 'waiting', wait_kind = ?, wait_signal = ?, run_at = ? WHERE id = ?",
        (kind, signal, run_at, job_id),
    )


def fan(ctx: djobs.Context, args: Any) -> Any:
    return ctx.fan_out([djobs.Sub("fan-child", n) for n in range(2)])


def test_waiting_jobs_say_what_they_wait_for(store: Any, queue: djobs.Queue, serve: Any) -> None:
    queue.register("nap", lambda args: None)
    queue.register("approve", lambda args: None)
    queue.register("fan", fan)
    queue.register("fan-child", lambda args: None, queue="children")
    sleeper = queue.enqueue("nap", {}, key="tenant:7", meta={"tenant": "7"})
    waiter = queue.enqueue("approve", {})
    parent = queue.enqueue("fan", {})
    queue.worker(queues={"default": 1}, burst=True, poll_interval=0.05).run()
    wake = datetime.now(UTC) + timedelta(hours=2)
    park(store, sleeper, "sleep", wake.timestamp())
    park(store, waiter, "signal", WAIT_FOREVER, "approved")
    client = serve(queue)

    r = client.get("/api/jobs?status=waiting")
    assert r.status == 200, r.text
    rows = {j["id"]: j for j in r.json["jobs"]}
    assert set(rows) == {sleeper, waiter, parent} and r.json["total"] == 3
    assert rows[sleeper]["wait_kind"] == "sleep" and rows[sleeper]["wait_signal"] is None
    assert abs(datetime.fromisoformat(rows[sleeper]["run_at"]).timestamp() - wake.timestamp()) < 1e-3
    assert rows[waiter]["wait_kind"] == "signal" and rows[waiter]["wait_signal"] == "approved"
    assert rows[waiter]["run_at"] is None  # waits for the signal alone, however long
    assert rows[parent]["wait_kind"] == "fanout" and rows[parent]["key"] is None

    job = client.get(f"/api/jobs/{sleeper}").json["job"]
    assert job["wait_kind"] == "sleep" and job["key"] == "tenant:7" and job["meta"] == {"tenant": "7"}


def test_jobs_list_filters_by_meta(queue: djobs.Queue, serve: Any) -> None:
    queue.register("bill", lambda args: None)
    t42 = queue.enqueue("bill", {}, meta={"tenant": "42", "plan": "pro"})
    queue.enqueue("bill", {}, meta={"tenant": "7"})
    counted = queue.enqueue("bill", {}, meta={"tenant": 42, "count": 3})
    queue.enqueue("bill", {})
    client = serve(queue)

    def ids(meta: str) -> tuple[list[str], int]:
        r = client.get("/api/jobs?" + urlencode({"meta": meta}))
        assert r.status == 200, r.text
        return [j["id"] for j in r.json["jobs"]], r.json["total"]

    assert ids("tenant=42") == ([t42], 1)
    assert ids("tenant:=42") == ([counted], 1)
    assert ids("tenant=42 plan=pro") == ([t42], 1)
    assert ids("tenant=42 plan=free") == ([], 0)
    assert ids("count:=3") == ([counted], 1)
    assert len(ids("")[0]) == 4
    for bad in ("tenant", "=3", "n:=nope", "tenant=", "x:=" + "[" * 200 + "]" * 200):
        r = client.get("/api/jobs?" + urlencode({"meta": bad}))
        assert r.status == 400, (bad, r.status)
        assert "meta" in r.json["error"]


def test_overview_shows_limits_and_what_they_hold_back(store: Any, queue: djobs.Queue, serve: Any) -> None:
    queue.register("call-api", lambda args: None, queue="api")
    queue.set_limits("api", running=1, key_rate="5/m")
    queue.set_limits("idle", rate="10/s")
    running = queue.enqueue("call-api", {})
    for n in range(3):
        queue.enqueue("call-api", {"n": n})
    sql(store, "UPDATE djobs_jobs SET status = 'running', started_at = {now} WHERE id = ?", (running,))
    client = serve(queue)

    limits = client.get("/api/overview").json["limits"]
    assert limits["api"] == {
        "rate": None, "running": 1, "key_rate": "5/m", "key_running": None,
        "held_back": {"running": 3, "rate": 0, "key_running": 0, "key_rate": 0},
    }  # fmt: skip
    assert limits["idle"]["rate"] == "10/s" and limits["idle"]["held_back"]["rate"] == 0
    queue.set_limits("api")  # removed: no longer listed
    assert "api" not in client.get("/api/overview").json["limits"]
