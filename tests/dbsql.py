"""Tests look at the database directly, beside the library: `sql(store, "SELECT … WHERE id = ?", (x,))`.

The library itself runs SQL only inside `djobs.storage`; tests verify what it stored with their own
queries (`?` placeholders and `{now}` for the database clock, rendered for the backend here).
"""

from __future__ import annotations

from typing import Any


def sql(store: Any, text: str, params: tuple[Any, ...] | list[Any] = ()) -> Any:
    return store.db.execute_sql(store.dialect.render(text), tuple(params))
