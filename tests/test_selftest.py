"""A short `djobs selftest` with kill -9 chaos on both backends, and proof that its checks can fail.

One selftest run per backend (module-scoped, about 30-60 s each) feeds several tests: every invariant must
hold on the real run, and violations planted into a copy of its record must be caught.
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from djobs import selftest
from djobs.proof import misbehave
from djobs.proof.invariants import JobRow, Snapshot
from djobs.proof.report import SelftestReport

PG_URL = os.environ.get("DJOBS_TEST_PG_URL", "")

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def chaos_report(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SelftestReport]:
    if request.param == "postgres":
        if not PG_URL:
            if os.environ.get("CI") == "true":
                pytest.fail("CI=true requires PostgreSQL (DJOBS_TEST_PG_URL)")
            pytest.skip("no PostgreSQL server (set DJOBS_TEST_PG_URL)")
        url: str | None = PG_URL
    else:
        url = None
    yield selftest.run(url, duration=14, workers=3, kills=5, chaos=True, seed=20261129, settle_timeout=90)


def _explain(report: SelftestReport) -> str:
    """The failing verdicts first, in full, so a cut report still says what broke."""
    failing = [v.to_dict() for v in report.verdicts if not v.ok]
    return json.dumps({"failing": failing, "errors": report.errors}, indent=1, default=str)[:8000] + "\n" + json.dumps(
        report.to_dict(), indent=1, default=str
    )[:4000]


def test_every_invariant_holds_under_kill_9(chaos_report: SelftestReport) -> None:
    r = chaos_report
    assert r.errors == [], _explain(r)
    assert [v.name for v in r.verdicts if not v.ok] == [], _explain(r)
    assert r.ok
    assert r.stats["kills"] == 5 and r.stats["graceful_stops"] == 1, r.stats
    seeded = r.stats["seeded"]
    for kind in ("plain", "slow", "workflow", "fail", "fanout", "unique", "misbehave"):
        assert seeded.get(kind, 0) > 0, seeded
    assert r.verdict("exactly once").checked >= 5 * seeded["workflow"]
    assert r.verdict("fan-out").checked == 10
    assert r.verdict("schedule").checked >= 3
    assert r.stats["unique_duplicates_refused"] > 0  # the storm really collided
    cap = r.verdict("running cap")
    assert cap.checked > 100 and r.stats["limited_running_peak"] == 2, (cap, r.stats)  # the cap was reached
    limits = r.verdict("past its limit")
    assert limits.checked > seeded["misbehave"], limits  # the slot watch saw running jobs with a time limit
    assert r.snapshot is not None
    assert r.stats["keyed_running_peak"] == 1 and len(r.snapshot.key_samples) > 50, (cap, r.stats)  # per key too
    misbehaved = {j.type for j in r.snapshot.jobs if r.snapshot.seeded.get(j.id) == "misbehave"}
    assert misbehaved == set(misbehave.TYPES), misbehaved


def _planted(report: SelftestReport) -> SelftestReport:
    planted = copy.deepcopy(report)
    assert planted.snapshot is not None
    return planted


def test_checker_catches_a_duplicated_durable_step(chaos_report: SelftestReport) -> None:
    r = _planted(chaos_report)
    assert r.snapshot is not None
    step = next(row for row in r.snapshot.ledger if row["kind"] == "step")
    r.snapshot.ledger.append({**step, "ts": step["ts"] + 1000})  # the same step ran again, much later
    checked = selftest.recheck(r)
    assert not checked.ok
    assert not checked.verdict("exactly once").ok
    assert step["wf"] in checked.verdict("exactly once").violations[0]


def test_checker_catches_an_unexplained_plain_rerun(chaos_report: SelftestReport) -> None:
    r = _planted(chaos_report)
    assert r.snapshot is not None
    s = r.snapshot
    killed = {i.pid for i in s.interruptions}
    rows = [row for row in s.ledger if row["kind"] == "plain"]
    # a plain job that ran once, on a process never stopped: plant a second run right after it
    job_id, end = next(
        (row["job"], row) for row in rows
        if row["phase"] == "end" and row["pid"] not in killed and sum(1 for x in rows if x["job"] == row["job"]) == 2
    )
    s.ledger.append({**end, "ts": end["ts"] + 0.5, "phase": "start", "pid": 1})
    s.ledger.append({**end, "ts": end["ts"] + 0.6, "phase": "end", "pid": 1})
    v = selftest.recheck(r).verdict("at least once")
    assert not v.ok and job_id in v.violations[0]


def test_checker_catches_a_lost_and_a_wedged_job(chaos_report: SelftestReport) -> None:
    r = _planted(chaos_report)
    assert r.snapshot is not None
    s = r.snapshot
    lost = next(j for j in s.jobs if s.seeded.get(j.id) == "plain")
    s.jobs.remove(lost)
    i, wedged = next((i, j) for i, j in enumerate(s.jobs) if s.seeded.get(j.id) == "slow")
    s.jobs[i] = JobRow(**{**wedged.__dict__, "status": "running"})
    v = selftest.recheck(r).verdict("terminal")
    assert not v.ok
    assert any(lost.id in x and "lost" in x for x in v.violations)
    assert any(wedged.id in x and "wedged" in x for x in v.violations)


def _successive_on_one_key(s: Snapshot) -> tuple[JobRow, JobRow]:
    keyed: dict[str, list[JobRow]] = {}
    for j in s.jobs:
        if j.unique_key:
            keyed.setdefault(j.unique_key, []).append(j)
    jobs = sorted(next(v for v in keyed.values() if len(v) > 1), key=lambda j: j.created_at)
    return jobs[0], jobs[1]


def test_checker_catches_two_active_jobs_on_one_key(chaos_report: SelftestReport) -> None:
    r = _planted(chaos_report)
    assert r.snapshot is not None
    s = r.snapshot
    a, b = _successive_on_one_key(s)
    assert selftest.recheck(r).verdict("unique").ok
    s.jobs[s.jobs.index(b)] = JobRow(**{**b.__dict__, "created_at": a.completed_at - 1.0})  # type: ignore[operator]
    v = selftest.recheck(r).verdict("unique")
    assert not v.ok and b.id in v.violations[0] and "created while" in v.violations[0]


def test_checker_catches_runs_overlapping_on_one_key(chaos_report: SelftestReport) -> None:
    r = _planted(chaos_report)
    assert r.snapshot is not None
    s = r.snapshot
    a, b = _successive_on_one_key(s)
    a_end = max(row["ts"] for row in s.ledger if row["kind"] == "unique" and row["job"] == a.id and row["phase"] == "end")
    s.ledger.append({"ts": a_end - 0.1, "pid": 1, "kind": "unique", "job": b.id, "key": b.unique_key, "phase": "start"})
    s.ledger.append({"ts": a_end - 0.05, "pid": 1, "kind": "unique", "job": b.id, "key": b.unique_key, "phase": "end"})
    v = selftest.recheck(r).verdict("unique")
    assert not v.ok and b.id in v.violations[0] and "before job" in v.violations[0]


def test_checker_catches_a_double_schedule_fire(chaos_report: SelftestReport) -> None:
    r = _planted(chaos_report)
    assert r.snapshot is not None
    tick = next(j for j in r.snapshot.jobs if j.type == "selftest.tick")
    r.snapshot.jobs.append(JobRow(**{**tick.__dict__, "id": "planted"}))
    assert not selftest.recheck(r).verdict("schedule").ok


def test_checker_catches_a_broken_running_cap(chaos_report: SelftestReport) -> None:
    r = _planted(chaos_report)
    assert r.snapshot is not None
    r.snapshot.running_samples.insert(len(r.snapshot.running_samples) // 2, 3)  # 3 running under a cap of 2
    v = selftest.recheck(r).verdict("running cap")
    assert not v.ok and "3 jobs of the limited queue" in v.violations[0]


def test_checker_catches_a_key_over_its_running_cap(chaos_report: SelftestReport) -> None:
    r = _planted(chaos_report)
    assert r.snapshot is not None
    r.snapshot.key_samples.insert(len(r.snapshot.key_samples) // 2, 2)  # two jobs of one key under a cap of 1
    v = selftest.recheck(r).verdict("running cap")
    assert not v.ok and "2 jobs of one key of the keyed queue" in v.violations[0], v


def test_checker_catches_a_hang_past_its_limit_and_a_misbehaving_rerun(chaos_report: SelftestReport) -> None:
    r = _planted(chaos_report)
    assert r.snapshot is not None
    s = r.snapshot
    stopped = {i.pid for i in s.interruptions}
    run = next(row for row in s.ledger if row["kind"] == "misbehave" and row["pid"] not in stopped)
    s.slot_samples.append((run["ts"] + 60, run["job"], run["ts"], run["pid"], misbehave.LIMIT))
    job = next(j for j in s.jobs if j.id == run["job"])
    runs = [row for row in s.ledger if row["kind"] == "misbehave" and row["job"] == job.id]
    last = max(row["ts"] for row in runs)
    # More runs than its attempts and every refund its real runs could claim: each planted run is on a
    # process never stopped, a minute after anything else, so nothing explains them (whatever the job did).
    for i in range(job.max_retries + 2 + len(runs)):
        s.ledger.append({**run, "ts": last + 61 + i, "pid": 1})
    v = selftest.recheck(r).verdict("past its limit")
    assert not v.ok
    assert any(run["job"] in x and "held its slot" in x for x in v.violations)
    assert any(run["job"] in x and "more than" in x for x in v.violations)


def test_selftest_never_touches_the_given_database(tmp_path: Path) -> None:
    db = tmp_path / "mine.db"
    report = selftest.run(f"sqlite:///{db}", duration=2, workers=1, kills=0, settle_timeout=60)
    assert report.ok, _explain(report)
    assert not db.exists()
    assert report.stats["chaos"] is False and report.stats["kills"] == 0


def test_durable_time_holds_and_its_checks_can_fail(chaos_report: SelftestReport) -> None:
    r = chaos_report
    assert r.verdict("signals").checked > 0 and r.verdict("sleepers").checked > 0
    assert r.stats["signals_sent"] == 3 * r.stats["seeded"]["waiter"]
    planted = _planted(r)
    s = planted.snapshot
    assert s is not None
    i, waiter = next((i, j) for i, j in enumerate(s.jobs) if s.seeded.get(j.id) == "waiter")
    got = waiter.result["got"]
    s.jobs[i] = JobRow(**{**waiter.__dict__, "result": {"got": [got[0], got[0], got[2]], "timed_out": True}})
    woke = next(row for row in s.ledger if row["kind"] == "woke")
    s.ledger.append({**woke, "ts": woke["ts"] - 100})  # the sleeper woke long before its time
    checked = selftest.recheck(planted)
    v = checked.verdict("signals")
    assert not v.ok and waiter.id in v.violations[0] and "lost" in v.violations[0]
    v = checked.verdict("sleepers")
    assert not v.ok and woke["job"] in v.violations[0] and "before its time" in v.violations[0]
