"""Generated requests thrown at the web API's writes (hypothesis), on both backends: never a 5xx, and
whatever was accepted can be read back by every reader (the job, the lists, the events, the stats)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from browser.support import TOKEN, Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import djobs
import djobs.ui
from djobs.ui.server import Server


@pytest.fixture
def api(store: Any, queue: djobs.Queue) -> Iterator[tuple[Client, djobs.Queue]]:
    @queue.handler("hello")
    def hello(args: Any) -> None:
        pass

    dash = djobs.ui.Dashboard(store, queue=queue, token=TOKEN)
    srv = Server(dash, "127.0.0.1", 0, threads=4).start()
    yield Client(srv.port), queue
    dash.close()
    srv.close()


names = st.one_of(
    st.sampled_from(["hello", "default", "q", "x" * 255, "x" * 256, "", "a\x00b", "\x1b[31m", "é", "a\u200bb"]),
    st.text(max_size=300),
)
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**80), max_value=2**80),
    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=50),
)  # fmt: skip
json_values = st.recursive(scalars, lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=10), kids, max_size=4), max_leaves=30)
times = st.one_of(
    st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=st.sampled_from([UTC, timezone(timedelta(hours=-5)), timezone(timedelta(hours=14))])).map(lambda d: d.isoformat()),
    st.datetimes().map(lambda d: d.isoformat()),
    st.text(max_size=30),
)  # fmt: skip
bodies = st.fixed_dictionaries(
    {},
    optional={
        "type": st.one_of(st.just("hello"), names, scalars),
        "args": json_values,
        "queue": st.one_of(names, scalars),
        "unique": st.one_of(names, scalars),
        "priority": st.one_of(st.integers(min_value=-(2**70), max_value=2**70), scalars),
        "retries": st.one_of(st.integers(min_value=-(2**40), max_value=2**40), scalars),
        "delay": st.one_of(st.floats(min_value=-1e308, max_value=1e308), st.integers(min_value=0, max_value=10**20), scalars),
        "at": st.one_of(times, scalars),
    },
)


def _deep(n: int) -> Any:
    value: Any = 1
    for _ in range(n):
        value = [value]
    return value


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=bodies)
def test_generated_enqueues_never_500_and_what_is_stored_reads_back(api: tuple[Client, djobs.Queue], body: dict[str, Any]) -> None:
    c, queue = api
    r = c.post("/api/jobs", raw=json.dumps(body, allow_nan=True).encode())
    assert r.status in (201, 400, 409, 413), (body, r.status, r.raw[:300])
    assert r.json.get("error") or r.status == 201
    if r.status == 201:
        job_id = r.json["id"]
        assert c.get(f"/api/jobs/{job_id}").status == 200
        assert c.get(f"/api/jobs/{job_id}/workflow").status == 200
        assert queue.get_job(job_id) is not None
    for path in ("/api/jobs?limit=500", "/api/overview", "/api/events?limit=1000", "/api/stats", "/metrics"):
        assert c.get(path).status == 200, (path, body)


def test_the_edges_of_each_limit(api: tuple[Client, djobs.Queue]) -> None:
    c, queue = api
    ok = [
        {"type": "hello", "priority": 2**31 - 1}, {"type": "hello", "priority": -(2**31)}, {"type": "hello", "retries": 2**31 - 1},
        {"type": "hello", "queue": "q" * 255}, {"type": "hello", "unique": "u" * 255}, {"type": "hello", "args": _deep(100)},
        {"type": "hello", "at": "9999-12-31T23:59:59+00:00"}, {"type": "hello", "at": "1970-01-01T00:00:00Z"},
        {"type": "hello", "delay": 0},
    ]  # fmt: skip
    bad = [
        {"type": "hello", "priority": 2**31}, {"type": "hello", "priority": -(2**31) - 1}, {"type": "hello", "retries": 2**31},
        {"type": "hello", "queue": "q" * 256}, {"type": "hello", "unique": "u" * 256}, {"type": "hello", "args": _deep(101)},
        {"type": "hello", "at": "9999-12-31T23:59:59-00:01"}, {"type": "hello", "at": "1969-12-31T23:59:59Z"},
        {"type": "hello", "delay": 1e300}, {"type": "hello", "delay": 10**20}, {"type": "hello", "queue": "a\tb"},
        {"type": "hello", "delay": 5, "at": "2030-01-01T00:00:00Z"},
    ]  # fmt: skip
    for body in ok:
        r = c.post("/api/jobs", body)
        assert r.status == 201, (body, r.raw[:300])
        assert c.get(f"/api/jobs/{r.json['id']}").status == 200
    stored = len(queue.list_jobs(limit=100))
    for body in bad:
        r = c.post("/api/jobs", body)
        assert r.status == 400, (body, r.status, r.raw[:300])
    assert len(queue.list_jobs(limit=100)) == stored == len(ok)
    assert c.get("/api/jobs?limit=500").status == 200
