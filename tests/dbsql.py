"""Tests look at the database directly, beside the library: `sql(store, "SELECT … WHERE id = ?", (x,))`.

The library itself runs SQL only inside `djobs.storage`; tests verify what it stored with their own
queries (`?` placeholders and `{now}` for the database clock, rendered for the backend here).
"""

from __future__ import annotations

from typing import Any


def sql(store: Any, text: str, params: tuple[Any, ...] | list[Any] = ()) -> Any:
    return store.db.execute_sql(store.dialect.render(text), tuple(params))


def record_statements(store: Any, monkeypatch: Any) -> list[tuple[str, Any]]:
    """From now on (until `monkeypatch.undo()`), every statement the storage sends, with its parameters: the
    real method runs them, this only keeps a copy."""
    sent: list[tuple[str, Any]] = []
    real = store.db.execute_sql

    def keep(text: str, params: Any = None, *args: Any, **kw: Any) -> Any:
        sent.append((text, params))
        return real(text, params, *args, **kw)

    monkeypatch.setattr(store.db, "execute_sql", keep)
    return sent
