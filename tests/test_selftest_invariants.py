"""The selftest's checks on made-up snapshots: each one passes a clean record and catches a planted fault."""

from __future__ import annotations

import copy

import pytest

from djobs.proof.invariants import (
    CHECKS,
    FanoutCase,
    Interruption,
    JobRow,
    Snapshot,
    check,
    check_fanouts,
    check_limits,
    check_plain_at_least_once,
    check_retries,
    check_schedule,
    check_steps_exactly_once,
    check_terminal,
    check_unique,
)
from djobs.proof.ledger import Ledger, read_ledger

KILLED_PID = 111
LIVE_PID = 222


def clean() -> Snapshot:
    jobs = [
        JobRow("p1", "selftest.plain", "completed", created_at=1.0, completed_at=3.0),
        JobRow("w1", "selftest.workflow", "completed", created_at=1.0, completed_at=9.0),
        JobRow("f1", "selftest.fail", "failed", attempt=3, max_retries=2, created_at=1.0, completed_at=8.0),
        JobRow("u1", "selftest.unique", "completed", created_at=1.0, completed_at=2.0, unique_key="k"),
        JobRow("u2", "selftest.unique", "completed", created_at=2.0, completed_at=3.0, unique_key="k"),
        JobRow("t1", "selftest.tick", "completed", run_at=10.0, created_at=10.0, completed_at=10.1),
        JobRow("t2", "selftest.tick", "completed", run_at=11.0, created_at=11.0, completed_at=11.1),
        JobRow("fo", "selftest.fanout", "failed", created_at=1.0, completed_at=5.0),
        JobRow("c0", "selftest.child", "completed", parent_id="fo", created_at=2.0, completed_at=3.0),
        JobRow("c1", "selftest.child", "failed", parent_id="fo", created_at=2.0, completed_at=3.0),
    ]
    ledger = [
        # p1 ran on a process that was killed, then again to completion
        {"ts": 1.1, "pid": KILLED_PID, "kind": "plain", "job": "p1", "phase": "start"},
        {"ts": 2.0, "pid": LIVE_PID, "kind": "plain", "job": "p1", "phase": "start"},
        {"ts": 2.1, "pid": LIVE_PID, "kind": "plain", "job": "p1", "phase": "end"},
        # w1 step 0 once; step 1 interrupted by the kill, re-run and checkpointed
        {"ts": 1.2, "pid": KILLED_PID, "kind": "step", "wf": "w1", "i": 0, "token": "a"},
        {"ts": 1.4, "pid": KILLED_PID, "kind": "step", "wf": "w1", "i": 1, "token": "b-lost"},
        {"ts": 5.0, "pid": LIVE_PID, "kind": "step", "wf": "w1", "i": 1, "token": "b"},
        {"ts": 5.5, "pid": LIVE_PID, "kind": "wf_done", "job": "w1", "tokens": ["a", "b"]},
        {"ts": 1.5, "pid": LIVE_PID, "kind": "fail", "job": "f1", "attempt": 1},
        {"ts": 3.0, "pid": LIVE_PID, "kind": "fail", "job": "f1", "attempt": 2},
        {"ts": 7.0, "pid": LIVE_PID, "kind": "fail", "job": "f1", "attempt": 3},
    ]
    return Snapshot(
        jobs=jobs,
        checkpoints={"w1": [(0, "selftest.step", "a"), (1, "selftest.step", "b")]},
        ledger=ledger,
        interruptions=[Interruption(1.5, KILLED_PID, "kill")],
        seeded={"p1": "plain", "w1": "workflow", "f1": "fail", "u1": "unique", "u2": "unique", "fo": "fanout"},
        fanouts={"fo": FanoutCase("fail_fast", 2, (1,))},
    )


def test_clean_snapshot_passes_every_check() -> None:
    verdicts = check(clean())
    assert [v.name for v in verdicts if not v.ok] == []
    assert len(verdicts) == len(CHECKS) == 9


def test_duplicated_step_after_checkpoint_is_caught() -> None:
    s = clean()
    s.ledger.append({"ts": 6.0, "pid": LIVE_PID, "kind": "step", "wf": "w1", "i": 1, "token": "b"})
    v = check_steps_exactly_once(s)
    assert not v.ok and "w1" in v.violations[0]


def test_step_rerun_without_a_kill_is_caught() -> None:
    s = clean()
    s.interruptions.clear()
    v = check_steps_exactly_once(s)
    assert not v.ok and "not stopped" in v.violations[0]


def test_replay_returning_other_values_is_caught() -> None:
    s = clean()
    s.ledger[6] = {**s.ledger[6], "tokens": ["a", "b-lost"]}
    assert not check_steps_exactly_once(s).ok


def test_plain_rerun_must_match_an_interruption() -> None:
    s = clean()
    assert check_plain_at_least_once(s).ok
    s.interruptions = [Interruption(1.5, LIVE_PID, "kill")]  # the wrong process was killed
    v = check_plain_at_least_once(s)
    assert not v.ok and "p1" in v.violations[0]


def test_plain_job_completed_without_side_effect_is_caught() -> None:
    s = clean()
    s.ledger = [r for r in s.ledger if r["kind"] != "plain"]
    assert not check_plain_at_least_once(s).ok


def test_lost_and_wedged_jobs_are_caught() -> None:
    s = clean()
    s.seeded["gone"] = "plain"
    s.jobs[1] = JobRow("w1", "selftest.workflow", "running", created_at=1.0)
    v = check_terminal(s)
    assert not v.ok
    assert any("lost" in x for x in v.violations) and any("wedged" in x for x in v.violations)


def test_wrong_final_status_is_caught() -> None:
    s = clean()
    s.jobs[0] = JobRow("p1", "selftest.plain", "failed", created_at=1.0, completed_at=3.0)
    assert not check_terminal(s).ok


@pytest.mark.parametrize(
    ("strategy", "failing", "width", "parent", "ok"),
    [
        ("fail_fast", (1,), 2, "failed", True),
        ("fail_fast", (1,), 2, "completed", False),
        ("collect_all", (1,), 2, "completed", True),
        ("collect_all", (1,), 2, "failed", False),
        ("threshold", (1,), 2, "failed", True),  # 1 of 2 < ceil(0.8 * 2)
        ("threshold", (1,), 2, "completed", False),
    ],
)
def test_fanout_outcome_by_strategy(strategy: str, failing: tuple[int, ...], width: int, parent: str,
                                    ok: bool) -> None:
    s = clean()
    s.fanouts = {"fo": FanoutCase(strategy, width, failing)}
    s.jobs[7] = JobRow("fo", "selftest.fanout", parent, created_at=1.0, completed_at=5.0)
    assert check_fanouts(s).ok is ok


def test_fanout_with_missing_children_is_caught() -> None:
    s = clean()
    s.jobs = [j for j in s.jobs if j.id != "c0"]
    assert not check_fanouts(s).ok


def test_overlapping_unique_jobs_are_caught() -> None:
    s = clean()
    s.jobs[4] = JobRow("u2", "selftest.unique", "completed", created_at=1.5, completed_at=3.0, unique_key="k")
    v = check_unique(s)
    assert not v.ok and "'k'" in v.violations[0]


def test_duplicate_schedule_fire_is_caught() -> None:
    s = clean()
    s.jobs.append(JobRow("t3", "selftest.tick", "completed", run_at=11.0, created_at=11.0, completed_at=11.2))
    v = check_schedule(s)
    assert not v.ok and "2 times" in v.violations[0]


def test_retries_too_many_runs_is_caught() -> None:
    s = clean()
    s.ledger.append({"ts": 7.5, "pid": LIVE_PID, "kind": "fail", "job": "f1", "attempt": 4})
    assert not check_retries(s).ok


def test_retries_fewer_runs_only_explained_by_a_kill() -> None:
    s = clean()
    s.ledger = [r for r in s.ledger if not (r["kind"] == "fail" and r["attempt"] == 2)]
    assert check_retries(s).ok  # a kill at 1.5 may have eaten an attempt between claim and handler
    s2 = copy.deepcopy(s)
    s2.interruptions.clear()
    assert not check_retries(s2).ok


def test_ledger_round_trip_ignores_torn_lines(tmp_path) -> None:  # type: ignore[no-untyped-def]
    ledger = Ledger(tmp_path)
    ledger.write("plain", job="a", phase="start")
    ledger.write("plain", job="a", phase="end")
    ledger.close()
    with open(next(tmp_path.glob("ledger-*.jsonl")), "a") as f:
        f.write('{"ts": 1, "pid"')  # killed mid-write
    rows = read_ledger(tmp_path)
    assert [r["phase"] for r in rows] == ["start", "end"]


def test_a_kill_long_after_a_run_finished_does_not_explain_a_rerun() -> None:
    s = clean()
    s.ledger = [r for r in s.ledger if r.get("job") != "p1"] + [
        {"ts": 1.1, "pid": KILLED_PID, "kind": "plain", "job": "p1", "phase": "start"},
        {"ts": 1.2, "pid": KILLED_PID, "kind": "plain", "job": "p1", "phase": "end"},
        {"ts": 9.0, "pid": LIVE_PID, "kind": "plain", "job": "p1", "phase": "start"},
        {"ts": 9.1, "pid": LIVE_PID, "kind": "plain", "job": "p1", "phase": "end"},
    ]
    s.ledger.sort(key=lambda r: r["ts"])
    s.interruptions = [Interruption(2.0, KILLED_PID)]  # within the outcome grace after the end: explained
    assert check_plain_at_least_once(s).ok
    s.interruptions = [Interruption(8.0, KILLED_PID)]  # the outcome was long due: a duplicate
    assert not check_plain_at_least_once(s).ok


def test_a_database_restart_explains_a_rerun() -> None:
    s = clean()
    s.interruptions = []
    assert not check_plain_at_least_once(s).ok
    s.restarts = [1.6]  # between p1's first run (1.1) and its second (2.0)
    assert check_plain_at_least_once(s).ok
    s.restarts = [100.0]  # long after: explains nothing
    assert not check_plain_at_least_once(s).ok


def test_completed_job_whose_last_run_was_cut_short_is_caught() -> None:
    s = clean()
    s.ledger = [r for r in s.ledger if not (r.get("job") == "p1" and r.get("phase") == "end")]
    s.ledger.append({"ts": 1.2, "pid": KILLED_PID, "kind": "plain", "job": "p1", "phase": "end"})
    s.ledger.sort(key=lambda r: r["ts"])
    v = check_plain_at_least_once(s)
    assert not v.ok and "last run" in v.violations[0]


def misbehaving() -> Snapshot:
    """A hang (retries=1) that ran twice, once on a process killed mid-run and recovered; an unstorable
    result that ran once; samples of the hang running within its 1 s limit, and past it on the killed one."""
    s = clean()
    s.jobs += [
        JobRow("h1", "selftest.hang", "failed", attempt=2, max_retries=1, created_at=1.0, completed_at=9.0),
        JobRow("r1", "selftest.unstorable", "failed", attempt=1, max_retries=1, created_at=1.0, completed_at=2.0),
    ]
    s.seeded.update(h1="misbehave", r1="misbehave")
    s.ledger += [
        {"ts": 1.2, "pid": KILLED_PID, "kind": "misbehave", "job": "h1", "attempt": 1},
        {"ts": 6.0, "pid": LIVE_PID, "kind": "misbehave", "job": "h1", "attempt": 2},
        {"ts": 1.3, "pid": LIVE_PID, "kind": "misbehave", "job": "r1", "attempt": 1},
    ]
    s.slot_samples = [(1.5, "h1", 1.2, KILLED_PID, 1.0), (9.0, "h1", 1.2, KILLED_PID, 1.0),
                      (6.5, "h1", 6.0, LIVE_PID, 1.0)]  # fmt: skip
    return s


def test_misbehaving_handlers_within_their_attempts_and_limits_pass() -> None:
    s = misbehaving()
    assert all(v.ok for v in check(s)), [v for v in check(s) if not v.ok]
    assert check_limits(s).checked == 2 + 3


def test_a_misbehaving_job_run_past_its_attempts_is_caught() -> None:
    s = misbehaving()
    s.ledger.append({"ts": 8.0, "pid": LIVE_PID, "kind": "misbehave", "job": "h1", "attempt": 3})
    verdict = check_limits(s)
    assert not verdict.ok and "h1 ran 3 times" in verdict.violations[0]
    s.interruptions.append(Interruption(7.0, LIVE_PID, "term"))  # stopped gracefully mid-run: refunded, re-run
    s.ledger[-1]["pid"] = 333
    assert check_limits(s).ok


def test_a_slot_held_past_its_limit_by_a_live_worker_is_caught() -> None:
    s = misbehaving()
    s.slot_samples.append((18.5, "h1", 6.0, LIVE_PID, 1.0))
    verdict = check_limits(s)
    assert not verdict.ok and "h1 held its slot 12.5s" in verdict.violations[0]


def test_a_misbehaving_job_left_unfailed_is_caught() -> None:
    s = misbehaving()
    s.jobs = [j if j.id != "r1" else JobRow("r1", "selftest.unstorable", "completed") for j in s.jobs]
    assert not check_terminal(s).ok
