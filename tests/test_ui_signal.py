"""Sending a signal from the web API (`POST /api/jobs/ID/signal`), over real HTTP against both backends: a
job really waiting in `ctx.wait_for_signal` gets the payload, bad requests are refused with nothing sent."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from browser.support import TOKEN, Client

import djobs
import djobs.ui
from djobs.ui.server import Server


@pytest.fixture
def client(store: Any, queue: djobs.Queue) -> Iterator[Client]:
    dashboards: list[Any] = []

    def capture(inner: Any) -> Any:
        dashboards.append(inner)
        return inner

    srv = Server(djobs.ui.app(store, queue=queue, token=TOKEN, middleware=[capture]), "127.0.0.1", 0, threads=4).start()
    yield Client(srv.port, "", token=TOKEN)
    srv.close()
    dashboards[0].close()


def approval(ctx: djobs.Context, args: Any) -> Any:
    return {"approved_by": ctx.wait_for_signal("approved")}


def drain(queue: djobs.Queue) -> None:
    queue.worker(queues={"default": 1}, burst=True, poll_interval=0.05).run()


def status(queue: djobs.Queue, job_id: str) -> str:
    job = queue.get_job(job_id)
    assert job is not None
    return str(job.status.value)


def test_a_signal_sent_from_the_web_reaches_the_waiting_job(queue: djobs.Queue, client: Client) -> None:
    queue.register("approval", approval)
    job_id = queue.enqueue("approval", {})
    drain(queue)
    assert status(queue, job_id) == "waiting"
    assert client.get(f"/api/jobs/{job_id}").json["job"]["wait_signal"] == "approved"

    r = client.post(f"/api/jobs/{job_id}/signal", {"name": "approved", "payload": {"by": "ann"}})
    assert r.status == 200, r.text
    assert r.json["ok"] is True and r.json["action"] == "signal" and r.json["name"] == "approved"
    drain(queue)
    assert queue.result(job_id, timeout=10) == {"approved_by": {"by": "ann"}}


def test_bad_signal_requests_are_refused_and_nothing_is_sent(queue: djobs.Queue, client: Client) -> None:
    queue.register("approval", approval)
    job_id = queue.enqueue("approval", {})
    drain(queue)
    path = f"/api/jobs/{job_id}/signal"
    deep: Any = []
    for _ in range(150):
        deep = [deep]
    for body in (
        None, [], "approved", {}, {"payload": 1}, {"name": ""}, {"name": 3}, {"name": "a\x00b"},
        {"name": "x" * 300}, {"name": "approved", "extra": 1}, {"name": "approved", "payload": deep},
    ):  # fmt: skip
        r = client.post(path, body)
        assert r.status == 400, (body, r.status, r.raw[:200])
    assert client.post(path, raw=b"{not json", headers={"Content-Type": "application/json"}).status == 400
    assert client.post(path, raw=b'{"name": "approved"}', headers={"Content-Type": "text/plain"}).status == 415
    assert client.post("/api/jobs/no-such-job/signal", {"name": "approved"}).status == 404
    # A cross-site page cannot send one through a signed-in browser.
    assert client.post(path, {"name": "approved"}, headers={"Origin": "https://evil.example"}).status == 403
    assert client.post(path, {"name": "approved"}, headers={"Sec-Fetch-Site": "cross-site"}).status == 403
    assert Client(client.port, token=None).post(path, {"name": "approved"}).status == 401
    drain(queue)
    assert status(queue, job_id) == "waiting"  # none of them reached the job

    queue.cancel_job(job_id)
    r = client.post(path, {"name": "approved"})
    assert r.status == 409 and "cancelled" in r.json["error"]


def test_the_page_has_the_signal_form(client: Client) -> None:
    page, script = client.get("/").text, client.get("/dashboard.js").text
    assert 'id="signal"' in page and 'id="s-name"' in page and 'id="s-payload"' in page
    assert "/signal`" in script
