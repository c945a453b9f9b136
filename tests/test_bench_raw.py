"""The raw-SQL baselines behind `djobs bench`: tiny runs on both backends do the work they claim to time."""

from __future__ import annotations

from pathlib import Path

import pytest

from djobs.proof.dbutil import redact, split_schema, throwaway, with_schema
from djobs.proof.raw import Raw, RawPostgres, RawSqlite


@pytest.fixture(params=["sqlite", "postgres"])
def raw(request: pytest.FixtureRequest, tmp_path: Path) -> Raw:
    if request.param == "sqlite":
        r: Raw = RawSqlite(str(tmp_path / "raw.db"))
    else:
        dsn, schema = split_schema(request.getfixturevalue("pg_url"))
        assert schema is not None
        r = RawPostgres(dsn, schema)
    r.setup()
    return r


def _count(raw: Raw, status: str) -> int:
    conn = raw.connect()
    try:
        row = conn.execute(f"SELECT count(*) FROM raw_jobs WHERE status = {raw.ph}", (status,)).fetchone()
        return int(row[0])
    finally:
        conn.close()


def test_raw_measures_return_rates_and_do_the_work(raw: Raw) -> None:
    assert raw.enqueue_single(50) > 0
    assert _count(raw, "pending") == 50
    assert raw.enqueue_batch(200, batch=100) > 0
    assert _count(raw, "pending") == 200
    assert raw.drain(300, processes=2) > 0  # raises unless the children completed all 300
    assert _count(raw, "completed") == 300 and _count(raw, "pending") == 0
    assert raw.drain(305, processes=2, batch=10) > 0  # batched claim and complete, a partial last batch
    assert _count(raw, "completed") == 305 and _count(raw, "pending") == 0
    assert raw.durable_steps(5, steps=10) > 0
    rounds = raw.fanout_roundtrip(10, rounds=2)
    assert len(rounds) == 2 and all(t > 0 for t in rounds)
    assert _count(raw, "completed") == 11  # 10 children and the parent of the last round


def test_raw_pickup_floor_is_measured_across_processes(raw: Raw) -> None:
    samples = raw.pickup_latency(5, gap=0.01)
    assert len(samples) == 5
    assert all(0 < s < 5 for s in samples)


def test_url_helpers() -> None:
    url = "postgresql://u:secret@h:5432/db?sslmode=disable&schema=a"
    base, schema = split_schema(url)
    assert schema == "a" and "schema" not in base and "sslmode=disable" in base
    assert split_schema(with_schema(url, "b")) == (base, "b")
    assert "secret" not in redact(url)
    with throwaway(None) as db:
        assert db.backend == "sqlite" and db.url.startswith("sqlite:////") and db.path is not None
        Path(db.path).write_text("x")
    assert not Path(db.path).exists()
