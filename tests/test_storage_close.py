"""Closing a store while other threads still use it (a dashboard's reader mid-read when the app exits): the
statement in flight ends normally, and only then is its connection closed. psycopg frees a connection's C
state on close without waiting for a statement running on it, which crashed the process."""

from __future__ import annotations

import threading
import time
from typing import Any

from dbsql import sql

import djobs


def test_closing_the_store_waits_for_a_statement_another_thread_is_running(pg_url: str) -> None:
    store = djobs.connect(pg_url)
    started = threading.Event()
    got: list[Any] = []

    def read() -> None:
        started.set()
        try:
            got.append(sql(store, "SELECT 1 FROM pg_sleep(0.5)").fetchone())
        except Exception as exc:
            got.append(exc)

    reader = threading.Thread(target=read)
    reader.start()
    try:
        started.wait(10)
        deadline = time.monotonic() + 10
        while not _sleeping(pg_url) and time.monotonic() < deadline:  # the statement is on the server
            time.sleep(0.01)
        t0 = time.monotonic()
        store.close()
        waited = time.monotonic() - t0
    finally:
        reader.join(30)
    assert got == [(1,)], got
    assert waited > 0.2, waited  # it waited for the statement, which ran 0.5 s
    assert not _sleeping(pg_url)


def _sleeping(pg_url: str) -> bool:
    """Whether some backend is running this test's pg_sleep (read from a connection of its own)."""
    admin = djobs.connect(pg_url)
    try:
        row = sql(admin, "SELECT COUNT(*) FROM pg_stat_activity WHERE state = 'active' AND query = ?",
                  ("SELECT 1 FROM pg_sleep(0.5)",)).fetchone()
        return bool(row[0])
    finally:
        admin.close()
