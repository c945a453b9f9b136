"""The storage contract: every named operation of `djobs.storage`, on SQLite and PostgreSQL alike.

Each operation's behaviour, its ownership guard (a write by a worker that does not own the claim changes
nothing) and its error mapping (driver errors never escape: DuplicateJob, StorageUnavailable, ValueError).
These tests drive storage directly, the way the Queue and the worker do, with domain records in and out.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from dbsql import sql

import djobs
from djobs.jobs import NewJob, Owner, PauseMode, decide, new_id
from djobs.outcomes import ClaimRequest, Outcome, OutcomeKind
from djobs.storage import PeeweeStorage
from djobs.storage.schema import STATUS_INDEXES

W1, W2 = "worker-one", "worker-two"


def new(type_: str = "t", queue: str = "default", **kw: Any) -> NewJob:
    return NewJob(new_id(), type_, queue, kw.pop("args_json", "{}"), kw.pop("priority", 0), kw.pop("max_retries", 3), **kw)


def claim(store: PeeweeStorage, worker: str = W1, queue: str = "default", types: tuple[str, ...] = ("t",), n: int = 10,
          held: bool = False) -> list[Any]:  # fmt: skip
    return store.cycle(worker, [], [ClaimRequest(queue, types, n, held)]).claims


def status(store: PeeweeStorage, job_id: str) -> str:
    job = store.get_job(job_id)
    assert job is not None
    return job.status.value


# -- insert and read ---------------------------------------------------------------------------------------
def test_insert_and_get_round_trip_every_field(store: PeeweeStorage) -> None:
    j = new(args_json='{"a":[1,2]}', priority=7, max_retries=2, timeout=30.0, key="tenant:1",
            meta_json='{"tenant":"1"}', backoff_json='{"initial":2,"maximum":9,"multiplier":3,"jitter":0}',
            unique_key="u1", unique_for=60.0, delay=5.0)  # fmt: skip
    store.insert_jobs([j])
    got = store.get_job(j.id)
    assert got is not None
    assert (got.type, got.queue, got.args, got.priority, got.max_retries) == ("t", "default", {"a": [1, 2]}, 7, 2)
    assert (got.timeout, got.key, got.meta, got.unique_key) == (30.0, "tenant:1", {"tenant": "1"}, "u1")
    assert got.backoff == djobs.Backoff(2, 9, 3, 0)
    assert got.status is djobs.JobStatus.PENDING and got.attempt == 0
    assert got.run_at is not None and got.unique_until is not None
    assert 3 < (got.run_at - got.created_at).total_seconds() < 7
    assert store.get_job("no-such-id") is None


def test_insert_many_is_all_or_nothing(store: PeeweeStorage) -> None:
    store.insert_jobs([new(unique_key="k")])
    with pytest.raises(djobs.DuplicateJob) as err:
        store.insert_jobs([new(), new(), new(unique_key="k")])
    assert err.value.key == "k" and err.value.existing_id is not None
    assert store.count_jobs() == 1


@pytest.mark.parametrize(
    "field,value",
    [
        ("priority", 2**31), ("max_retries", -1), ("max_retries", 2**31), ("type", ""), ("type", "x" * 256),
        ("queue", "a\x00b"), ("queue", "\ud800"), ("unique_key", "k" * 256), ("key", "\x1b[31m"), ("at", 1e300),
        ("at", -5.0), ("delay", float("inf")), ("delay", 1e12), ("timeout", -1.0), ("args_json", "[" * 101 + "]" * 101),
    ],
)  # fmt: skip
def test_out_of_range_values_are_refused_and_nothing_is_written(store: PeeweeStorage, field: str, value: Any) -> None:
    j = new(**{field: value}) if field not in ("type", "queue", "priority", "max_retries") else None
    if j is None:
        base = {"type_": "t", "queue": "default", "priority": 0, "max_retries": 3}
        base["type_" if field == "type" else field] = value
        j = NewJob(new_id(), base["type_"], base["queue"], "{}", base["priority"], base["max_retries"])
    with pytest.raises((ValueError, TypeError)):
        store.insert_jobs([j])
    assert store.count_jobs() == 0


def test_unique_key_conflicts_map_to_duplicate_job_with_the_holder(store: PeeweeStorage) -> None:
    first = new(unique_key="k")
    store.insert_jobs([first])
    with pytest.raises(djobs.DuplicateJob) as err:
        store.insert_jobs([new(unique_key="k")])
    assert err.value.existing_id == first.id
    assert store.key_holder("k") == first.id and store.key_holder("other") is None


def test_an_idempotency_window_holds_the_key_after_the_job_finished(store: PeeweeStorage) -> None:
    held = new(unique_key="w", unique_for=3600)
    short = new(unique_key="s", unique_for=0.2)
    store.insert_jobs([held, short])
    for c in claim(store):
        store.cycle(W1, [Outcome(OutcomeKind.COMPLETE, c.job.id, 1, result_json="1")], [])
    assert status(store, held.id) == "completed"
    with pytest.raises(djobs.DuplicateJob) as err:
        store.insert_jobs([new(unique_key="w")])
    assert err.value.existing_id == held.id
    time.sleep(0.3)
    store.insert_jobs([new(unique_key="s")])  # the short window is over: the key is free


# -- the claim and its outcomes ------------------------------------------------------------------------------
def test_claim_order_types_and_due_time(store: PeeweeStorage) -> None:
    low, high, later, other = new(priority=0), new(priority=5), new(priority=9, delay=3600), new("u")
    store.insert_jobs([low, high, later, other])
    first = claim(store, n=1)
    assert [c.job.id for c in first] == [high.id], "priority order"
    got = first + claim(store, n=10)
    assert [c.job.id for c in got] == [high.id, low.id], "only due jobs, only our types"
    assert all(c.job.status is djobs.JobStatus.RUNNING and c.job.attempt == 1 for c in got)
    assert all(c.job.locked_by == W1 for c in got)
    assert claim(store, W2) == [], "a claimed job is not claimed twice"


def test_paused_queue_and_paused_worker_claim_nothing(store: PeeweeStorage) -> None:
    store.insert_jobs([new(), new(queue="q2")])
    store.set_queue_paused("default", True, "maintenance")
    assert claim(store) == []
    assert store.paused_queues() == ["default"] and store.queue_paused("default")
    store.set_queue_paused("default", False)
    store.register_worker(W1, "h", 1, {"default": 1}, ["t"])
    store.set_worker_pause(W1, True, "graceful", None)
    assert claim(store) == []
    assert store.worker_control(W1) == (True, "graceful")
    store.set_worker_pause(W1, False, None, None)
    assert len(claim(store)) == 1


def test_outcomes_are_guarded_by_ownership(store: PeeweeStorage) -> None:
    jobs = [new() for _ in range(4)]
    store.insert_jobs(jobs)
    ids = [c.job.id for c in claim(store, W1)]
    outs = [
        Outcome(OutcomeKind.COMPLETE, ids[0], 1, result_json='"x"'),
        Outcome(OutcomeKind.FAIL, ids[1], 1, error="boom", traceback="tb"),
        Outcome(OutcomeKind.RETRY, ids[2], 1, error="again", delay=60),
        Outcome(OutcomeKind.RELEASE, ids[3], 1),
    ]
    # Another worker, and the right worker with a stale attempt number: nothing changes.
    assert store.cycle(W2, outs, []).owned == [False] * 4
    stale = [Outcome(o.kind, o.job_id, 2, o.result_json, o.error, o.traceback, o.delay) for o in outs]
    assert store.cycle(W1, stale, []).owned == [False] * 4
    assert [status(store, i) for i in ids] == ["running"] * 4
    assert store.cycle(W1, outs, []).owned == [True] * 4
    assert [status(store, i) for i in ids] == ["completed", "failed", "retrying", "pending"]
    failed = store.get_job(ids[1])
    assert failed is not None and (failed.last_error, failed.last_traceback) == ("boom", "tb")
    released = store.get_job(ids[3])
    assert released is not None and released.attempt == 0 and released.refunds == 1
    assert store.cycle(W1, outs, []).owned == [False] * 4, "an outcome is written once"


def test_refunds_in_a_row_are_bounded(store: PeeweeStorage) -> None:
    j = new()
    store.insert_jobs([j])
    for _ in range(djobs.outcomes.MAX_REFUNDS):
        (c,) = claim(store)
        result = store.cycle(W1, [Outcome(OutcomeKind.RELEASE, j.id, c.job.attempt)], [])
        assert result.owned == [True] and result.failed == []
    (c,) = claim(store)
    result = store.cycle(W1, [Outcome(OutcomeKind.RELEASE, j.id, c.job.attempt)], [])
    assert result.failed == [(j.id, None)]
    job = store.get_job(j.id)
    assert job is not None and job.status is djobs.JobStatus.FAILED and "in a row" in (job.last_error or "")


def test_prefetched_claims_and_their_start(store: PeeweeStorage) -> None:
    store.insert_jobs([new()])
    (c,) = claim(store, held=True)
    assert sql(store, "SELECT held FROM djobs_jobs WHERE id = ?", (c.job.id,)).fetchone()[0] == 1
    store.cycle(W1, [], [], started=[(c.job.id, c.job.attempt, time.monotonic() - 30)])
    held, started_at = sql(store, "SELECT held, started_at FROM djobs_jobs WHERE id = ?", (c.job.id,)).fetchone()
    assert held == 0
    assert 28 < store.db_now() - started_at < 60, "the start is the database clock minus the time since it started"


@pytest.mark.parametrize("available", [1, 3, 6])
def test_a_claim_and_its_prefetch_split_the_jobs_in_claim_order(store: PeeweeStorage, available: int) -> None:
    """What a dispatcher asks each round (free slots, then a prefetch of the same queue and types; one
    statement on PostgreSQL): the best jobs start now, the next ones are held, the rest stay pending."""
    jobs = [new(priority=p) for p in (1, 9, 5, 7, 3, 8)[:available]]
    store.insert_jobs(jobs)
    other = new(type_="other")  # same queue, another type: neither request takes it
    store.insert_jobs([other])
    got = store.cycle(W1, [], [ClaimRequest("default", ("t",), 2, False), ClaimRequest("default", ("t",), 2, True)]).claims
    best = sorted(jobs, key=lambda j: -j.priority)
    by_request = {k: sorted((c.job.priority for c in got if c.request == k), reverse=True) for k in (0, 1)}
    assert by_request == {0: [j.priority for j in best[:2]], 1: [j.priority for j in best[2:4]]}
    held = dict(sql(store, "SELECT id, held FROM djobs_jobs WHERE status = 'running'").fetchall())
    assert held == {c.job.id: int(c.request == 1) for c in got}
    assert all(c.job.attempt == 1 and c.job.status is djobs.JobStatus.RUNNING for c in got)
    assert status(store, other.id) == "pending" and store.count_jobs() == available + 1


def test_a_prefetched_claim_started_and_completed_in_one_round(store: PeeweeStorage) -> None:
    store.insert_jobs([new(), new()])
    a, b = claim(store, n=2, held=True)
    done = Outcome(OutcomeKind.COMPLETE, a.job.id, a.job.attempt, result_json="7")
    started = [(a.job.id, a.job.attempt, time.monotonic() - 10), (b.job.id, b.job.attempt, time.monotonic() - 20)]
    assert store.cycle(W1, [done], [], started=started).owned == [True]
    rows = dict(
        (r[0], r[1:]) for r in sql(store, "SELECT id, status, held, started_at, completed_at, result FROM djobs_jobs").fetchall()
    )
    status, held, started_at, completed_at, result = rows[a.job.id]
    assert (status, held, result) == ("completed", 0, "7")
    assert 8 < completed_at - started_at < 40
    status, held, started_at, _, _ = rows[b.job.id]  # started, still running: its start recorded alone
    assert (status, held) == ("running", 0) and 18 < store.db_now() - started_at < 60


def test_a_round_of_completions_and_a_claim_writes_each_part_once(store: PeeweeStorage) -> None:
    """A dispatcher's usual round (completions, prefetched claims that started, a claim and its prefetch,
    events; one statement on PostgreSQL): every part written, each guarded as alone, events in order."""
    a, b, x = new(), new(), new()
    store.insert_jobs([a, b])
    claim(store, n=2, held=True)
    store.insert_jobs([x])
    (cx,) = claim(store, W2)
    best, next_, last = new(priority=9), new(priority=5), new(priority=1)
    store.insert_jobs([best, next_, last])
    before = store.latest_event_id()
    outs = [
        Outcome(OutcomeKind.COMPLETE, a.id, 1, result_json="7", event=("job_completed", '{"n":1}')),
        Outcome(OutcomeKind.COMPLETE, x.id, cx.job.attempt, result_json="8", event=("job_completed", '{"n":2}')),
    ]
    started = [(a.id, 1, time.monotonic() - 10), (b.id, 1, time.monotonic() - 20)]
    reqs = [ClaimRequest("default", ("t",), 1, False), ClaimRequest("default", ("t",), 1, True)]
    result = store.cycle(W1, outs, reqs, [("custom:round", None, "default", W1, None)], started, True)
    assert result.owned == [True, False], "x belongs to another worker"
    assert {c.request: c.job.id for c in result.claims} == {0: best.id, 1: next_.id}
    rows = {r[0]: r[1:] for r in sql(store, "SELECT id, status, held, locked_by, result, started_at FROM djobs_jobs").fetchall()}
    assert rows[a.id][:4] == ("completed", 0, None, "7")
    assert rows[b.id][:3] == ("running", 0, W1) and 18 < store.db_now() - rows[b.id][4] < 60
    assert rows[x.id][:3] == ("running", 0, W2)
    assert (rows[best.id][:3], rows[next_.id][:3]) == (("running", 0, W1), ("running", 1, W1))
    assert rows[last.id][0] == "pending"
    evs = store.events_since(before)
    assert [(e.kind, e.job_id) for e in evs[:2]] == [("custom:round", None), ("job_completed", a.id)]
    assert evs[1].data == {"n": 1}
    assert sorted((e.kind, e.job_id, e.worker_id) for e in evs[2:]) == sorted(
        ("job_started", j.id, W1) for j in (best, next_)
    )
    assert all(e.data == {"attempt": 1} for e in evs[2:])


def test_release_all_and_owned_running(store: PeeweeStorage) -> None:
    store.insert_jobs([new(), new()])
    got = claim(store)
    assert store.owned_running(W1) == {(c.job.id, 1) for c in got}
    assert store.owned_running(W2) == set()
    released = store.release_all(W1)
    assert {r[0] for r in released} == {c.job.id for c in got} and {r[1] for r in released} == {"pending"}
    assert store.release_claims(W1, [(c.job.id, 1) for c in got]) == 0, "released already"


def test_next_due(store: PeeweeStorage) -> None:
    assert store.next_due(["default"]) is None
    store.insert_jobs([new(delay=100), new(queue="other")])
    due = store.next_due(["default"])
    assert due is not None and 90 < due - store.db_now() < 110


# -- the rescuer, workers, leases --------------------------------------------------------------------------
def test_reap_recovers_jobs_of_silent_workers_only(store: PeeweeStorage) -> None:
    store.register_worker(W1, "h", 1, {"default": 1}, ["t"])
    store.register_worker(W2, "h", 2, {"default": 1}, ["t"])
    a, b = new(), new(max_retries=0)
    store.insert_jobs([a])
    claim(store, W1)
    store.insert_jobs([b])
    claim(store, W2)
    sql(store, "UPDATE djobs_workers SET heartbeat_at = heartbeat_at - 100 WHERE id = ?", (W1,))
    rows = store.reap(30.0, "lost")
    assert [(r[0], r[1]) for r in rows] == [(a.id, "pending")]
    assert status(store, b.id) == "running"
    sql(store, "UPDATE djobs_workers SET heartbeat_at = heartbeat_at - 100 WHERE id = ?", (W2,))
    assert [(r[0], r[1]) for r in store.reap(30.0, "lost")] == [(b.id, "failed")], "attempts spent"
    assert {e.kind for e in store.job_events(a.id)} >= {"job_recovered"}


def test_heartbeat_and_leases(store: PeeweeStorage) -> None:
    store.register_worker(W1, "h", 1, {"default": 1}, ["t"])
    store.register_worker(W2, "h", 2, {"default": 1}, ["t"])
    assert store.heartbeat_and_lease(W1, 0, [("m", 30.0)]) == (True, {"m"})
    assert store.heartbeat_and_lease(W2, 0, [("m", 30.0)]) == (True, set()), "the lease runs: W1 keeps it"
    assert store.heartbeat_and_lease(W1, 0, [("m", 30.0)]) == (True, {"m"}), "renewal"
    assert store.lease_holder("m") is not None and store.lease_holder("m")[0] == W1  # type: ignore[index]
    store.stop_worker(W1)  # a stopping worker drops its leases
    assert store.heartbeat_and_lease(W2, 0, [("m", 0.2)]) == (True, {"m"})
    time.sleep(0.3)
    assert store.acquire_lease("m", W1, 30.0), "an expired lease goes to whoever asks"
    assert store.heartbeat_and_lease("gone", 0, []) == (False, set())
    assert [w.id for w in store.workers()] == [W2] and len(store.workers(include_dead=True)) == 2


def test_job_type_registry(store: PeeweeStorage) -> None:
    assert store.known_types() == []
    store.register_types([("send", "emails", 5, 1, 30.0, '{"backoff":{"initial":2}}'), ("b", "default", 3, 0, None, None)])
    types = {t.name: t for t in store.known_types()}
    assert (types["send"].queue, types["send"].retries, types["send"].timeout) == ("emails", 5, 30.0)
    assert store.type_options("send") == {"backoff": {"initial": 2}} and store.type_options("b") is None
    store.register_types([("send", "other", 1, 0, None, None)])
    assert store.known_types("send")[0].queue == "other"


# -- checkpoints, fan-outs, waiting ---------------------------------------------------------------------------
def test_checkpoints_are_guarded_and_first_writer_wins(store: PeeweeStorage) -> None:
    store.insert_jobs([new()])
    (c,) = claim(store)
    me, other = Owner(c.job.id, W1, 1), Owner(c.job.id, W2, 1)
    store.write_call_checkpoint(me, "default", "c:0", 0, "step", '"v1"', None, "{}")
    store.write_call_checkpoint(me, "default", "c:0", 0, "step", '"v2"', None, "{}")
    with pytest.raises(djobs.errors.OwnershipLost):
        store.write_call_checkpoint(other, "default", "c:1", 1, "step", '"x"', None, "{}")
    with pytest.raises(djobs.errors.OwnershipLost):
        store.save_named_checkpoint(other, "default", "phase", '"x"', "{}")
    store.save_named_checkpoint(me, "default", "phase", '"a"', "{}")
    store.save_named_checkpoint(me, "default", "phase", '"b"', "{}")
    assert store.load_checkpoints(c.job.id) == {"c:0": ("step", '"v1"', None), "p:phase": ("phase", '"b"', None)}
    assert [(k.name, k.value) for k in store.checkpoints(c.job.id)] == [("step", "v1"), ("phase", "b")]


def test_checkpoints_written_together_keep_each_answer(store: PeeweeStorage) -> None:
    """Checkpoints submitted by many threads at once share one statement; each still gets its own answer:
    written, already there (first writer wins) or OwnershipLost, and only written ones leave an event."""
    import threading

    store.insert_jobs([new() for _ in range(3)])
    claims = claim(store, n=3)
    assert len(claims) == 3
    owners = [Owner(c.job.id, W1, 1) for c in claims]
    store.write_call_checkpoint(owners[0], "default", "c:0", 0, "step", '"first"', None, "{}")
    calls = [(owners[0], "c:0", '"again"'), (owners[1], "c:0", '"b"'), (owners[1], "c:1", '"b1"'),
             (owners[2], "c:0", '"c"'), (Owner(claims[2].job.id, W2, 1), "c:1", '"stolen"')] * 4
    outcomes: dict[int, object] = {}
    start = threading.Barrier(len(calls))

    def write(i: int, owner: Owner, key: str, value: str) -> None:
        start.wait()
        try:
            store.write_call_checkpoint(owner, "default", key, int(key[2:]), "step", value, None, "{}")
            outcomes[i] = "ok"
        except djobs.errors.OwnershipLost:
            outcomes[i] = "lost"

    threads = [threading.Thread(target=write, args=(i, *c)) for i, c in enumerate(calls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [outcomes[i] for i in range(len(calls))] == ["ok", "ok", "ok", "ok", "lost"] * 4
    assert store.load_checkpoints(claims[0].job.id) == {"c:0": ("step", '"first"', None)}
    assert store.load_checkpoints(claims[1].job.id) == {"c:0": ("step", '"b"', None), "c:1": ("step", '"b1"', None)}
    assert store.load_checkpoints(claims[2].job.id) == {"c:0": ("step", '"c"', None)}
    saved = [e for e in store.events_since(0, limit=1000) if e.kind == "checkpoint_saved"]
    assert len(saved) == 1 + 16

def test_suspend_fan_out_decide_and_wake(store: PeeweeStorage) -> None:
    parent = new()
    store.insert_jobs([parent])
    (c,) = claim(store)
    subs = [new("s", parent_id=parent.id, fanout_id="f1", fanout_pos=i) for i in range(2)]
    with pytest.raises(djobs.errors.OwnershipLost):
        store.suspend(Owner(parent.id, W2, 1), "default", "fanout")
    store.suspend(
        Owner(parent.id, W1, 1), "default", "fanout", checkpoint=("c:0", 0, "fan_out", '{"fanout_id":"f1"}'),
        event=("job_waiting", "{}"), fanout=("f1", parent.id, "c:0", "fail_fast", 2, None, 0), sub_jobs=subs,
    )  # fmt: skip
    job = store.get_job(parent.id)
    assert job is not None and job.status is djobs.JobStatus.WAITING and job.attempt == 0 and job.wait_kind == "fanout"
    assert job.run_at is None, "waits for an event, not a time"
    assert claim(store) == [], "a waiting parent is not claimable"
    assert store.fanout_state("f1") == (None, "fail_fast")
    assert store.evaluate_fanout("f1", decide) is None, "undecided while sub-jobs run"
    got = claim(store, types=("s",))
    store.cycle(W1, [Outcome(OutcomeKind.COMPLETE, g.job.id, 1, result_json="1") for g in got], [])
    assert store.fanouts_due() == ([], ["f1"])
    assert store.evaluate_fanout("f1", decide) == "succeeded"
    assert status(store, parent.id) == "pending"
    assert [r[1] for r in store.fanout_results("f1")] == ["completed", "completed"]
    assert store.evaluate_fanout("f1", decide) is None, "decided once"


def test_a_due_sleeper_is_claimable_and_a_waiting_one_is_not(store: PeeweeStorage) -> None:
    a, b = new(), new()
    store.insert_jobs([a, b])
    claim(store)
    store.suspend(Owner(a.id, W1, 1), "default", "sleep", wake_at=store.db_now() - 1)
    store.suspend(Owner(b.id, W1, 1), "default", "sleep", wake_at=store.db_now() + 3600)
    assert [c.job.id for c in claim(store)] == [a.id]
    assert store.resume_orphaned_waiters() == 0, "a sleeper is not an orphaned fan-out parent"


# -- control -----------------------------------------------------------------------------------------------
def test_pause_resume_and_cancel_jobs(store: PeeweeStorage) -> None:
    a, b, parent = new(), new(), new()
    store.insert_jobs([a, b, parent, new(parent_id=parent.id)])
    assert store.pause_job(a.id, PauseMode.GRACEFUL, "why") == (True, False)
    assert store.job_pause_state(a.id) is True and store.job_pause_state("nope") is None
    assert [j.id for j in store.paused_jobs()] == [a.id]
    assert store.resume_job(a.id) and status(store, a.id) == "pending"
    (c,) = [c for c in claim(store, n=1)]
    assert store.pause_job(c.job.id, PauseMode.AGGRESSIVE, None) == (True, True)
    assert status(store, c.job.id) == "paused"
    assert len(store.cancel_tree(parent.id, "stop")) == 2, "a parent is cancelled with its subtree"
    assert store.cancel_tree(parent.id, "again") == []
    assert store.retry_job(parent.id) and status(store, parent.id) == "pending"
    assert store.get_job(parent.id).last_error is None  # type: ignore[union-attr]
    assert store.retry_job(b.id) is False, "only failed or cancelled jobs are retried"


# -- listings, summaries, deletion, retention ------------------------------------------------------------------
def test_listings_summaries_counts_and_meta(store: PeeweeStorage) -> None:
    store.insert_jobs([new(args_json='{"big":"' + "x" * 5000 + '"}', meta_json='{"tenant":"7","n":1}'), new("u", "q")])
    assert store.count_jobs() == 2 and store.count_jobs(queue="q") == 1 and store.count_jobs(type="u") == 1
    (s,) = store.job_summaries(type="t", preview=50)
    assert len(s.args_preview) <= 50 and s.args_preview.startswith('{"big":"xxx')
    assert [j.type for j in store.list_jobs(meta={"tenant": "7"})] == ["t"]
    assert store.list_jobs(meta={"tenant": 7}) == [], "meta values compare as JSON"
    assert [j.type for j in store.list_jobs(meta={"n": 1})] == ["t"]
    assert store.list_jobs(limit=2**70) != [], "a huge limit is everything, not an error"


def test_summaries_say_why_a_job_waits(store: PeeweeStorage) -> None:
    a, b = new(), new()
    store.insert_jobs([a, b])
    for c in claim(store, n=2):
        kind, signal = ("signal", "approved") if c.job.id == a.id else ("sleep", None)
        store.suspend(Owner(c.job.id, W1, 1), "default", kind, signal=signal, wake_at=None if signal else store.db_now() + 60)
    waits = {s.id: (s.wait_kind, s.wait_signal, s.run_at is None) for s in store.job_summaries(status="waiting")}
    assert waits == {a.id: ("signal", "approved", True), b.id: ("sleep", None, False)}


def test_delete_jobs_skips_unfinished_ones_and_purge_respects_windows(store: PeeweeStorage) -> None:
    a, b, c = new(), new(unique_key="keep", unique_for=3600), new("other")
    store.insert_jobs([a, b, c])
    for cl in claim(store, n=2):
        store.cycle(W1, [Outcome(OutcomeKind.COMPLETE, cl.job.id, 1, result_json="1")], [])
    assert store.delete_jobs([c.id]) == 0, "a pending job is not deleted"
    assert store.delete_jobs([a.id]) == 1 and store.get_job(a.id) is None and store.job_events(a.id) == []
    assert store.purge(("completed",), 0.0) == 0, "a job inside its idempotency window is kept"
    with pytest.raises(ValueError):
        store.purge(("running",), 0.0)


def test_queue_stats_and_lag(store: PeeweeStorage) -> None:
    store.insert_jobs([new(), new(queue="q", delay=3600)])
    time.sleep(0.05)
    stats = {s.name: s for s in store.queue_stats()}
    assert stats["default"].counts == {"pending": 1} and stats["q"].counts == {"pending": 1}
    lag = store.queue_lag()
    assert set(lag) == {"default"} and lag["default"] >= 0.0


def test_counts_by_queue_and_status_add_up_from_the_partial_indexes(store: PeeweeStorage) -> None:
    """No index holds every job's status: counts are summed from the partial indexes (the claim's counts
    pending, retrying and waiting together, another tells every status but pending and running apart).
    Every status in three queues, counted three ways, must match what the table holds."""
    from djobs.jobs import STATUS_VALUES

    jobs = [new(queue=("a", "b", "c")[i % 3]) for i in range(67)]
    store.insert_jobs(jobs)
    for i, j in enumerate(jobs):
        status = STATUS_VALUES[(i * 5) % len(STATUS_VALUES)]
        if status != "pending":
            sql(store, "UPDATE djobs_jobs SET status = ?, run_at = ? WHERE id = ?",
                (status, 9e11 if status == "waiting" else 0.0, j.id))  # fmt: skip
    truth: dict[str, dict[str, int]] = {}
    for q, status, n in sql(store, "SELECT queue, status, COUNT(*) FROM djobs_jobs GROUP BY queue, status").fetchall():
        truth.setdefault(q, {})[status] = n
    assert len({s for by in truth.values() for s in by}) == len(STATUS_VALUES), "every status is there"
    assert {s.name: s.counts for s in store.queue_stats()} == truth
    for q, by_status in truth.items():
        assert store.count_jobs(queue=q) == sum(by_status.values())
        for status, n in by_status.items():
            assert store.count_jobs(status=status, queue=q) == n
    for status in STATUS_VALUES:
        assert store.count_jobs(status=status) == sum(by.get(status, 0) for by in truth.values())
    assert store.count_jobs(status="no such status") == 0
    lag = store.queue_lag()
    assert set(lag) == {"a", "b", "c"}, "pending and retrying jobs are due, waiting ones do not count"


def test_a_job_row_becomes_each_field_from_its_own_column() -> None:
    """`records.job` unpacks a row by position: every column holds a value of its own here, so a column
    read into the wrong field, or the columns' order changed without it, shows."""
    from datetime import UTC, datetime

    from djobs.storage import records
    from djobs.storage.dialect import JOB_COLS

    ints = {"priority": 7, "attempt": 8, "max_retries": 9, "refunds": 2, "fanout_pos": 3, "pause_requested": 1}
    times = ("run_at", "started_at", "completed_at", "created_at", "updated_at", "last_heartbeat_at", "paused_at",
             "unique_until")  # fmt: skip
    json_cols = ("args", "result", "progress", "meta")
    row: dict[str, Any] = {c: f"<{c}>" for c in JOB_COLS}
    row |= ints | {c: 1000.0 * (i + 1) for i, c in enumerate(times)} | {c: f'{{"c": "{c}"}}' for c in json_cols}
    row |= {"status": "paused", "timeout": 12.5, "backoff": '{"initial": 3, "maximum": 4, "multiplier": 5, "jitter": 0.5}'}
    job = records.job((*(row[c] for c in JOB_COLS), "an extra column"))
    fields = {"key": "job_key"}
    for name in ("id", "type", "queue", "last_error", "locked_by", "unique_key", "parent_id", "pause_reason",
                 "last_traceback", "wait_kind", "wait_signal", "key", "timeout", "priority", "attempt",
                 "max_retries", "refunds"):  # fmt: skip
        assert getattr(job, name) == row[fields.get(name, name)], name
    for name in times:
        assert getattr(job, name) == datetime.fromtimestamp(row[name], UTC), name
    for name in json_cols:
        assert getattr(job, name) == {"c": name}, name
    assert job.status == djobs.JobStatus.PAUSED
    assert (job.backoff.initial, job.backoff.maximum, job.backoff.multiplier, job.backoff.jitter) == (3, 4, 5, 0.5)


# -- schedules and events --------------------------------------------------------------------------------------
def test_schedules_fire_exactly_once_per_fire_time(store: PeeweeStorage) -> None:
    store.upsert_schedule("s", "t", "every 60s", "null", "default", 0, 3, lambda now: now - 1, source="config")
    (info,) = store.schedules()
    assert (info.name, info.source) == ("s", "config")
    (due,) = store.due_schedules()
    nf = due[7]
    assert store.fire_schedule("s", nf, nf, nf + 60, new())
    assert not store.fire_schedule("s", nf, nf, nf + 60, new()), "the fire time was claimed"
    assert store.count_jobs() == 1
    assert store.set_schedule_paused("s", True, "r") and store.schedules()[0].paused
    assert store.delete_schedule("s") and not store.delete_schedule("s")


def test_events_since_job_events_and_trim(store: PeeweeStorage) -> None:
    store.insert_events([("custom:x", "j1", "q", None, '{"n":1}'), ("custom:y", "j1", "q", None, None)])
    store.insert_events([("custom:z", "j2", None, None, '"not an object"')])
    evs = store.events_since(0, 10)
    assert [e.kind for e in evs] == ["custom:x", "custom:y", "custom:z"]
    assert [e.kind for e in store.job_events("j1", newest=1)] == ["custom:y"]
    assert store.latest_event_id() == evs[-1].id
    assert store.trim_events(3600.0, 1) == 2 and [e.kind for e in store.events_since(0)] == ["custom:z"]


# -- readers never break on stored rows; errors are mapped ------------------------------------------------------
def test_a_bad_row_never_breaks_a_reader(store: PeeweeStorage) -> None:
    good = new()
    store.insert_jobs([good, new()])
    sql(store, "UPDATE djobs_jobs SET args = '{not json', status = 'weird', run_at = 1e300, meta = '[1]' WHERE id <> ?",
        (good.id,))  # fmt: skip
    jobs = store.list_jobs()
    assert len(jobs) == 2
    bad = next(j for j in jobs if j.id != good.id)
    assert bad.args == "{not json" and bad.run_at is None and bad.meta is None and "weird" in (bad.last_error or "")
    assert len(store.job_summaries()) == 2 and store.queue_stats()


def test_a_database_that_is_not_one_is_storage_unavailable(tmp_path: Any) -> None:
    path = tmp_path / "not.db"
    path.write_bytes(b"this is not an SQLite database" * 100)
    with pytest.raises(djobs.StorageUnavailable):
        djobs.connect(f"sqlite:///{path}")


def test_an_unreachable_server_is_storage_unavailable() -> None:
    with pytest.raises(djobs.StorageUnavailable):
        djobs.connect("postgresql://postgres@127.0.0.1:1/nothing?connect_timeout=1")


def test_bad_url_parameters_are_value_errors() -> None:
    with pytest.raises(ValueError, match="bogus"):
        djobs.connect("postgresql://postgres@127.0.0.1:5432/test?bogus=1")


def test_threads_that_end_without_closing_do_not_exhaust_the_pool(pg_url: str) -> None:
    """Peewee binds a connection to each thread: short-lived threads that read and end must not keep
    their connections' places in the pool."""
    import threading

    store = djobs.connect(pg_url, pool=djobs.PoolConfig(max_open=3, max_idle=3))
    try:
        for _ in range(10):  # far more threads than places
            t = threading.Thread(target=lambda: store.get_job("nothing"))
            t.start()
            t.join()
        assert store.get_job("nothing") is None, "the pool ran out of connections"
    finally:
        store.close()


def test_threads_going_idle_keep_one_connection_open_between_them(pg_url: str) -> None:
    """An idle worker's threads each hand their connection back before a long wait: the server keeps one
    backend for all of them, not one per thread that happened to be busy at the same moment."""
    import threading

    store = djobs.connect(pg_url)
    both_busy = threading.Barrier(3, timeout=30)

    def busy_then_idle() -> None:
        store.ping()
        both_busy.wait()  # two connections are checked out at once
        both_busy.wait()
        store.release_connection()

    try:
        store.ping()
        store.release_connection()  # this thread's too: only the two below are busy
        threads = [threading.Thread(target=busy_then_idle) for _ in range(2)]
        for t in threads:
            t.start()
        both_busy.wait()
        busy = len(store.db._in_use)  # type: ignore[attr-defined]
        both_busy.wait()
        for t in threads:
            t.join()
        assert busy == 2
        assert len(store.db._in_use) == 0 and len(store.db._connections) == 1  # type: ignore[attr-defined]
        store.ping()  # and the kept one serves the next caller
    finally:
        store.close()


def _job_indexes(store: PeeweeStorage) -> set[str]:
    q = (
        "SELECT indexname FROM pg_indexes WHERE tablename = 'djobs_jobs' AND schemaname = current_schema()"
        if store.is_pg
        else "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'djobs_jobs'"
    )
    return {r[0] for r in sql(store, q).fetchall()}


#: What schema 4 had in place of SQLite's partial indexes over statuses (and still has on PostgreSQL): the
#: same keys, with `status IN (…)` predicates.
_SCHEMA_4_INDEXES = (
    "CREATE INDEX djobs_jobs_claim2 ON djobs_jobs (queue, priority DESC, run_at, id) "
    "WHERE status IN ('pending','retrying','waiting')",
    "CREATE UNIQUE INDEX djobs_jobs_unique_active ON djobs_jobs (unique_key) "
    "WHERE unique_key IS NOT NULL AND status NOT IN ('completed','failed','cancelled')",
    "CREATE INDEX djobs_jobs_keyed ON djobs_jobs (queue, job_key, priority DESC, run_at, id) "
    "WHERE job_key IS NOT NULL AND status IN ('pending','retrying','waiting')",
)


@pytest.mark.parametrize("version", [3, 4, 5])
def test_an_older_schema_is_migrated_and_keeps_its_jobs(store: PeeweeStorage, db_url: str, version: int) -> None:
    """Version 3 kept two indexes of finished jobs, version 4 wrote the statuses of SQLite's partial indexes as
    IN lists, versions up to 5 counted from an index over every job's status; opening any of them with this
    djobs leaves today's indexes only, rows and unique keys intact, and counts right."""
    current = {names[1 - store.is_pg] for names in STATUS_INDEXES.values()}
    store.insert_jobs([new(), new(), new(unique_key="held")])
    c = claim(store, n=1)[0]
    store.cycle(W1, [Outcome(OutcomeKind.COMPLETE, c.job.id, 1, result_json="1")], [])
    old = [*_SCHEMA_4_INDEXES] if version < 5 else []  # schema 5's partial indexes over statuses are today's
    if version == 3:
        old += [
            "CREATE INDEX djobs_jobs_finished ON djobs_jobs (status, completed_at) WHERE status IN ('completed','failed','cancelled')",
            "CREATE INDEX djobs_jobs_done ON djobs_jobs (completed_at, queue) WHERE status = 'completed'",
        ]
    elif version == 4:
        old.append(
            "CREATE INDEX djobs_jobs_finished2 ON djobs_jobs (status, completed_at, queue) "
            "WHERE status IN ('completed','failed','cancelled')"
        )
    for stmt in (
        *(f"DROP INDEX {name}" for name in sorted(current) if version < 5),
        "DROP INDEX djobs_jobs_queue_status2",
        "CREATE INDEX djobs_jobs_queue_status ON djobs_jobs (queue, status)",  # counts read it until schema 6
        *old,
        f"UPDATE djobs_meta SET value = '{version}' WHERE \"key\" = 'schema_version'",
    ):
        sql(store, stmt)
    again = djobs.connect(db_url)
    try:
        assert again.count_jobs(status="completed") == 1 and again.count_jobs(status="pending") == 2
        indexes = _job_indexes(again)
        gone = {"djobs_jobs_finished", "djobs_jobs_done", "djobs_jobs_queue_status"}
        if not store.is_pg:
            gone |= {names[0] for names in STATUS_INDEXES.values()}
        assert current | {"djobs_jobs_queue_status2"} <= indexes and not gone & indexes
        (stats,) = again.queue_stats()
        assert stats.completed_last_minute == 1 and stats.counts == {"completed": 1, "pending": 2}
        with pytest.raises(djobs.DuplicateJob):
            again.insert_jobs([new(unique_key="held")])
    finally:
        again.close()


def test_group_commit_hands_each_thread_its_own_result_or_error(store: PeeweeStorage) -> None:
    # Eight threads submitting at once are written in shared groups by whichever of them leads; each must
    # get back exactly its own result, or its own error, whether it led the group or waited for it.
    import threading

    def flush(payloads: list[int]) -> list[Any]:
        store.db_now()  # a statement inside the shared transaction, as a real flush makes
        return [ValueError(p) if p % 3 == 0 else p * 10 for p in payloads]

    def plain(n: int) -> int:
        if n % 5 == 0:
            raise KeyError(n)
        return -n

    got: dict[int, Any] = {}
    start = threading.Barrier(8)

    def submit(i: int) -> None:
        start.wait()
        for k in range(60):
            n = i * 1000 + k
            try:
                got[n] = store.group_batch(flush, n) if k % 2 else store.group(lambda n=n: plain(n))
            except (ValueError, KeyError) as exc:
                got[n] = (type(exc).__name__, exc.args[0])

    threads = [threading.Thread(target=submit, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    want: dict[int, Any] = {}
    for n in (i * 1000 + k for i in range(8) for k in range(60)):
        if n % 2:
            want[n] = ("ValueError", n) if n % 3 == 0 else n * 10
        else:
            want[n] = ("KeyError", n) if n % 5 == 0 else -n
    assert got == want
