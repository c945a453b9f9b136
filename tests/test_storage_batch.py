"""Batch inserts (`insert_jobs` with many rows, what `enqueue_many`, fan-outs and schedules use) store exactly
what the same jobs inserted one by one store, whichever columns repeat across the batch and whichever differ,
on both backends, and all or nothing however many statements the batch takes."""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import pytest
from dbsql import sql
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import djobs
from djobs.jobs import NewJob, new_id
from djobs.storage import PeeweeStorage
from djobs.storage.jobs import _MANY_CHUNK

# Stored columns a batch row and a single row must agree on; then its times, compared relative to created_at
# (each insert reads the database clock when it runs).
_READ = (
    "SELECT type, queue, args, priority, status, attempt, max_retries, unique_key, parent_id, fanout_id, "
    "fanout_pos, timeout, job_key, meta, backoff, trace, pause_requested, run_at, created_at, unique_until, "
    "updated_at FROM djobs_jobs WHERE id = ?"
)

# Few values per column, so a drawn batch has columns that repeat and columns that differ.
_FIELD = {
    "type_": st.sampled_from(["t", "other.type"]),
    "queue": st.sampled_from(["default", "q2"]),
    "args_json": st.sampled_from(["{}", '{"a":1}', "null", '"x"', "[1,2.5]"]),
    "priority": st.sampled_from([0, -3, 2**31 - 1]),
    "max_retries": st.sampled_from([0, 3]),
    "at": st.sampled_from([None, 4102444800.0]),
    "delay": st.sampled_from([0.0, 5, 120.0]),
    "parent_id": st.sampled_from([None, "p-1"]),
    "fanout_id": st.sampled_from([None, "f-1"]),
    "fanout_pos": st.sampled_from([None, 0, 7]),
    "timeout": st.sampled_from([None, 2.5, 30]),
    "key": st.sampled_from([None, "tenant:1", "tenant:2"]),
    "meta_json": st.sampled_from([None, '{"m":"1"}']),
    "backoff_json": st.sampled_from([None, '{"initial":1,"maximum":9,"multiplier":2,"jitter":0}']),
    "trace": st.sampled_from([None, "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"]),
}


def _job(fields: dict[str, Any], unique: str | None = None, unique_for: float | None = None) -> NewJob:
    f = dict(fields)
    base = (new_id(), f.pop("type_"), f.pop("queue"), f.pop("args_json"), f.pop("priority"), f.pop("max_retries"))
    return NewJob(*base, unique_key=unique, unique_for=unique_for, **f)


def _stored(store: PeeweeStorage, job_id: str) -> tuple[Any, ...]:
    """The row, its times as seconds after created_at to 10 ms (two clock reads of one insert may fall apart under load) (`run_at` as stored when absolute)."""
    row = sql(store, _READ, (job_id,)).fetchone()
    assert row is not None, job_id
    run_at, created, until, updated = row[17:]
    rel = (None if t is None else round(t - created, 2) for t in (until, updated))
    return (*row[:17], run_at if run_at > created + 3600 else round(run_at - created, 2), *rel)


def _twin(j: NewJob) -> NewJob:
    return j._replace(id=new_id(), unique_key=None if j.unique_key is None else j.unique_key + "-single")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(st.fixed_dictionaries(_FIELD), min_size=2, max_size=12), keyed=st.booleans())
def test_a_batch_stores_what_single_inserts_store(store: PeeweeStorage, rows: list[dict[str, Any]], keyed: bool) -> None:
    batch = [_job(r, f"u-{new_id()}" if keyed and i % 2 else None, 60.0 if keyed and i % 2 else None)
             for i, r in enumerate(rows)]  # fmt: skip
    singles = [_twin(j) for j in batch]
    store.insert_jobs(batch)
    for j in singles:
        store.insert_jobs([j])
    for b, s in zip(batch, singles, strict=True):
        got, want = list(_stored(store, b.id)), list(_stored(store, s.id))
        assert got[7] == b.unique_key and want[7] == s.unique_key
        got[7] = want[7] = None
        assert got == want


def test_a_batch_larger_than_one_statement_is_all_or_nothing(store: PeeweeStorage) -> None:
    n = 2 * _MANY_CHUNK + 3
    store.insert_jobs([_job({"type_": "t", "queue": "default", "args_json": "{}", "priority": 0, "max_retries": 3},
                            unique="held")])  # fmt: skip
    args = [f'{{"i":{i}}}' for i in range(n)]
    jobs = [NewJob(new_id(), "t", "default", a, i % 3, 3) for i, a in enumerate(args)]
    with pytest.raises(djobs.DuplicateJob):
        store.insert_jobs([*jobs, NewJob(new_id(), "t", "default", "{}", 0, 3, unique_key="held")])
    assert store.count_jobs() == 1
    store.insert_jobs(jobs)
    assert store.count_jobs() == n + 1
    stored = dict(sql(store, "SELECT id, args || '|' || priority FROM djobs_jobs WHERE unique_key IS NULL").fetchall())
    assert stored == {j.id: f"{j.args_json}|{j.priority}" for j in jobs}


def test_a_batch_whose_every_column_repeats_but_the_id(store: PeeweeStorage) -> None:
    same = {"type_": "t", "queue": "q", "args_json": '{"x":[1]}', "priority": 4, "max_retries": 1, "delay": 30.0}
    jobs = [_job(same) for _ in range(5)]
    store.insert_jobs(jobs)
    rows = {_stored(store, j.id) for j in jobs}
    assert len(rows) == 1
    (row,) = rows
    assert row[:7] == ("t", "q", '{"x":[1]}', 4, "pending", 0, 1) and row[17] == 30.0


@pytest.mark.parametrize("bad", [{"priority": True}, {"retries": True}, {"delay": float("nan")}, {"queue": ""},
                                 {"unique": "u\x00"}, {"delay": "5"}])  # fmt: skip
def test_options_are_checked_per_job_even_when_they_equal_the_job_before(queue: djobs.Queue, bad: dict[str, Any]) -> None:
    """`enqueue_many` and storage check a batch's repeated options once: True equals 1 and NaN equals nothing,
    yet each must still be refused, and the good jobs beside it are not written."""
    queue.handler("t")(lambda: None)
    good: dict[str, Any] = {k: (1 if k in ("priority", "retries") else 5.0 if k == "delay" else "q" if k == "queue" else None)
            for k in bad}  # fmt: skip
    with pytest.raises((TypeError, ValueError)):
        queue.enqueue_many([djobs.Sub("t", **good), djobs.Sub("t", **good), djobs.Sub("t", **bad)])
    assert queue.storage.count_jobs() == 0


def test_storage_checks_a_repeated_priority_by_type_too(store: PeeweeStorage) -> None:
    with pytest.raises(TypeError):
        store.insert_jobs([NewJob(new_id(), "t", "default", "{}", 1, 3), NewJob(new_id(), "t", "default", "{}", True, 3)])
    assert store.count_jobs() == 0


@pytest.mark.parametrize("bad", [{"args_json": "[" * 101 + "]" * 101}, {"unique_key": "u\x00"}, {"unique_key": ""}])
def test_storage_checks_each_jobs_own_fields_in_a_batch_whose_options_all_repeat(store: PeeweeStorage,
                                                                                  bad: dict[str, Any]) -> None:
    """A batch of one set of options has them checked once; the fields each job has of its own (args, unique
    key) are still checked job by job, wherever the bad one stands."""
    for at in (0, 5, 9):
        jobs = [NewJob(new_id(), "t", "q", "[1]", 2, 3) for _ in range(10)]
        jobs[at] = jobs[at]._replace(**bad)
        with pytest.raises(ValueError):
            store.insert_jobs(jobs)
    assert store.count_jobs() == 0


@pytest.mark.parametrize("bad", [{"priority": 2**31}, {"max_retries": -1}, {"queue": ""}, {"type": "a\x00b"},
                                 {"delay": float("inf")}, {"timeout": -1.0}, {"key": ""}])  # fmt: skip
def test_storage_checks_every_job_of_a_batch_whose_options_differ(store: PeeweeStorage, bad: dict[str, Any]) -> None:
    """Options are checked once only when every job shares them: a later job whose own option is out of range
    is refused, the first job's being fine."""
    jobs = [NewJob(new_id(), "t", "q", "[1]", 2, 3) for _ in range(4)]
    jobs[2] = jobs[2]._replace(**bad)
    with pytest.raises(ValueError):
        store.insert_jobs(jobs)
    assert store.count_jobs() == 0


def test_a_batch_mixing_plain_subs_and_subs_with_options_resolves_each(queue: djobs.Queue) -> None:
    """A plain sub (a type only) takes the batch's settings from one template per type; a sub of the same
    type with options of its own gets its own template, whatever order they come in."""
    queue.handler("t", priority=2, retries=4, queue="tq")(lambda: None)
    subs = [djobs.Sub("t"), djobs.Sub("t", priority=5), djobs.Sub("t"), djobs.Sub("t", queue="other"),
            djobs.Sub("t", retries=0), djobs.Sub("t", delay=0), djobs.Sub("t")]  # fmt: skip
    ids = queue.enqueue_many(subs)
    got = [(j.queue, j.priority, j.max_retries) for j in map(queue.get_job, ids) if j is not None]
    assert got == [("tq", 2, 4), ("tq", 5, 4), ("tq", 2, 4), ("other", 2, 4), ("tq", 2, 0), ("tq", 2, 4), ("tq", 2, 4)]
    via_fanout_defaults = queue.new_jobs([djobs.Sub("t"), djobs.Sub("t", retries=1)], retries=7, queue="fq")
    assert [(j.queue, j.max_retries) for j in via_fanout_defaults] == [("fq", 7), ("fq", 1)]
    from_a_generator = queue.enqueue_many(djobs.Sub("t", {"n": n}) for n in range(3))  # type: ignore[arg-type]
    assert [queue.get_job(i).args for i in from_a_generator] == [{"n": 0}, {"n": 1}, {"n": 2}]  # type: ignore[union-attr]


def test_a_sub_whose_type_is_not_a_string_is_refused_whatever_came_before_it(queue: djobs.Queue) -> None:
    """Subs are grouped by their settings to resolve each setting once; a type that is not a string but equals
    the settings of a sub before it must still be refused, not enqueued as that sub's type."""
    queue.handler("t")(lambda: None)
    before = djobs.Sub("t", priority=5, retries=3)
    for hostile in [("t", None, 5, int, 3, int, None), ["t"], 5, None]:
        with pytest.raises((TypeError, ValueError)):
            queue.enqueue_many([before, djobs.Sub(hostile)])  # type: ignore[arg-type]
    assert queue.storage.count_jobs() == 0


@pytest.mark.parametrize("bad", ["t", ("t", {}), None, {"type": "t"}])
def test_a_batch_of_something_other_than_subs_is_a_type_error(queue: djobs.Queue, bad: Any) -> None:
    queue.handler("t")(lambda: None)
    with pytest.raises(TypeError, match=r"djobs\.Sub"):
        queue.enqueue_many([djobs.Sub("t"), bad])
    assert queue.storage.count_jobs() == 0


# -- generated batches ------------------------------------------------------------------------------------------
_json = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70) | st.text(max_size=12)
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda kids: st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=6), kids, max_size=3),
    max_leaves=12,
)  # fmt: skip
_bad_args = st.sampled_from([object(), float("nan"), {"x": float("inf")}, lambda: None]) | st.integers(
    min_value=98, max_value=102).map(lambda d: functools.reduce(lambda v, _: [v], range(d), 1))  # d deep; fmt: skip


def _mostly_unset(*values: Any) -> Any:
    return st.none() | st.none() | st.none() | st.sampled_from(values)


_subs = st.builds(
    djobs.Sub,
    st.sampled_from(["t"] * 12 + ["typed", "unknown"]),
    _json | _json | _json | _json | _json | _bad_args,
    priority=_mostly_unset(7, True, 2**31, 1.0),
    retries=_mostly_unset(0, 2, -1),
    queue=_mostly_unset("q", "", "a\x00b"),
    delay=_mostly_unset(0, 30.0, float("nan"), -5),
    unique=_mostly_unset("u1", "u2", "", "\ud800"),
)


# Batches of one set of options, what storage checks once: only the args and unique keys differ.
_uniform = st.fixed_dictionaries({
    "priority": _mostly_unset(7, True, 2**31), "retries": _mostly_unset(2, -1), "queue": _mostly_unset("q", ""),
}).flatmap(lambda o: st.lists(st.builds(lambda a, u: djobs.Sub("t", a, unique=u, **o), _json,
                                        st.none() | st.sampled_from(["", "a\x00b", "\ud800"]) | st.uuids().map(str)),
                              min_size=2, max_size=5))  # fmt: skip


@dataclasses.dataclass
class _Point:
    x: int
    y: int


def _takes_a_point(args: _Point) -> None:
    return None


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(subs=st.lists(_subs, min_size=1, max_size=4) | _uniform)
def test_a_generated_batch_is_stored_whole_as_its_jobs_alone_would_be_or_not_at_all(queue: djobs.Queue,
                                                                                     subs: list[djobs.Sub]) -> None:
    """Whatever a batch holds, `enqueue_many` stores every job as the sub says, each sub being accepted on its
    own too, or refuses with a clear error and writes nothing, a batch refused for a bad value holding a sub
    refused on its own: the batch's shared checks decide as the checks of one job do."""
    queue.register("t", lambda args: None)  # again each example: registering replaces
    queue.register("typed", _takes_a_point)
    before = queue.storage.count_jobs()
    try:
        ids = queue.enqueue_many(subs)
    except (ValueError, TypeError, djobs.UnknownJobType, djobs.DuplicateJob) as exc:
        event(f"refused: {type(exc).__name__}")
        assert queue.storage.count_jobs() == before, exc
        if isinstance(exc, djobs.DuplicateJob):
            return
        refused = 0
        for s in subs:  # one of them, alone, is refused as well
            try:
                queue.cancel_job(_alone(queue, s))
            except (ValueError, TypeError, djobs.UnknownJobType, djobs.DuplicateJob):
                refused += 1
        assert refused, f"a batch refused with {exc!r} whose every sub is stored alone"
        return
    event("stored")
    for s, job in zip(subs, map(queue.get_job, ids), strict=True):
        assert job is not None
        assert (job.type, job.queue, job.priority, job.args, job.unique_key) == (
            s.type, s.queue or "default", int(s.priority or 0), djobs.codec.loads(djobs.codec.dumps(s.args)), s.unique)
        queue.cancel_job(job.id)  # frees its unique key
    for s in subs:  # and each of them is accepted alone too
        queue.cancel_job(_alone(queue, s))


def _alone(queue: djobs.Queue, s: djobs.Sub) -> str:
    """The sub enqueued on its own, through `enqueue` (which shares none of the batch's shortcuts)."""
    return queue.enqueue(s.type, s.args, priority=s.priority, retries=s.retries, queue=s.queue, delay=s.delay,
                         unique=s.unique)
