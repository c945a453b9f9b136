"""Shared fixtures: a fresh real database per test, on SQLite and on PostgreSQL.

`db_url` is parametrised over both backends. SQLite gets a file in the test's temp dir; PostgreSQL gets a
schema of its own in the server named by DJOBS_TEST_PG_URL (set by scripts/test when a server answers),
dropped afterwards. Under CI=true a missing PostgreSQL is an error, never a skip.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

PG_URL = os.environ.get("DJOBS_TEST_PG_URL", "")
IN_CI = os.environ.get("CI") == "true"

# Tests must not pick up the developer's own configuration.
for _name in list(os.environ):
    if _name.startswith("DJOBS_") and _name not in ("DJOBS_TEST_PG_URL", "DJOBS_SOAK", "DJOBS_TEST_PG_RESTART"):
        del os.environ[_name]


def _pg_schema_url(base: str, schema: str) -> str:
    sep = "&" if "?" in base else "?"
    return f"{base}{sep}schema={schema}"


def _pg_admin(sql: str) -> None:
    import psycopg

    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(sql)


def make_sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'djobs.db'}"


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return make_sqlite_url(tmp_path)


@pytest.fixture
def pg_url() -> Iterator[str]:
    if not PG_URL:
        if IN_CI:
            pytest.fail("CI=true requires PostgreSQL (DJOBS_TEST_PG_URL)")
        pytest.skip("no PostgreSQL server (set DJOBS_TEST_PG_URL)")
    schema = "t_" + uuid.uuid4().hex[:12]
    _pg_admin(f'CREATE SCHEMA "{schema}"')
    try:
        yield _pg_schema_url(PG_URL, schema)
    finally:
        try:
            _pg_admin(f'DROP SCHEMA "{schema}" CASCADE')
        except Exception:  # a test that left connections open must not fail teardown of others
            pass


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh database URL on each backend."""
    if request.param == "sqlite":
        return make_sqlite_url(tmp_path)
    return request.getfixturevalue("pg_url")


@pytest.fixture
def store(db_url: str) -> Iterator[object]:
    import djobs

    s = djobs.connect(db_url)
    yield s
    s.close()


@pytest.fixture
def queue(store: object) -> object:
    import djobs

    return djobs.Queue(store)  # type: ignore[arg-type]


# Tests that restart the shared PostgreSQL server would cut every other test's connections: they run in a
# second, serial pytest pass (scripts/test), never beside others.
SERIAL_MARKERS = ("postgres_restart",)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "serial: restarts shared services; run alone (scripts/test runs them last)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if any(m in item.name for m in SERIAL_MARKERS):
            item.add_marker(pytest.mark.serial)


# Fixtures of the durable, fan-out, control and schedule suites (tests/durable_handlers.py): a ledger
# directory for side effects, a queue with the suites' handlers, and real worker processes.
@pytest.fixture
def led(tmp_path: Path) -> Path:
    d = tmp_path / "ledger"
    d.mkdir()
    return d


@pytest.fixture
def q(queue: object, led: Path) -> object:
    from durable_handlers import register

    register(queue, led)  # type: ignore[arg-type]
    return queue


@pytest.fixture
def procs(q: object, db_url: str, led: Path) -> Iterator[object]:
    from durable_handlers import WorkerProcs, open_gate

    p = WorkerProcs(db_url, led, queue=q)
    yield p
    open_gate(led, "ALL")  # handlers still waiting on a gate finish, so the processes stop quickly
    p.close()
