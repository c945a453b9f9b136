"""`LiveTable`: a DataTable refreshed in place from a list of keyed rows.

Refreshing every second must not reset the cursor or re-add a few hundred rows when nothing changed:
`sync()` updates changed cells when the row keys are the same, and otherwise rebuilds the table while
keeping the cursor on the row it was on.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from textual.coordinate import Coordinate
from textual.widgets import DataTable

if TYPE_CHECKING:
    from ..app import DjobsApp

Row = tuple[str, Sequence[Any]]


class LiveTable(DataTable[Any]):
    COLUMNS: tuple[str, ...] = ()

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes, cursor_type="row", zebra_stripes=True)
        self._rows: list[Row] = []

    @property
    def djobs_app(self) -> DjobsApp:
        return self.app  # type: ignore[return-value]

    def on_mount(self) -> None:
        self.add_columns(*self.COLUMNS)

    def selected_key(self) -> str | None:
        """The key of the row under the cursor, or None when the table is empty."""
        if not self._rows or not (0 <= self.cursor_row < len(self._rows)):
            return None
        return self._rows[self.cursor_row][0]

    def keys(self) -> list[str]:
        """Row keys in display order."""
        return [key for key, _ in self._rows]

    def select_key(self, key: str) -> bool:
        """Put the cursor on the row with this key; False when no such row is shown."""
        for index, (row_key, _) in enumerate(self._rows):
            if row_key == key:
                self.move_cursor(row=index, animate=False)
                return True
        return False

    def sync(self, rows: list[Row]) -> None:
        if rows == self._rows:
            return
        if [k for k, _ in rows] == [k for k, _ in self._rows]:
            for index, ((_, new), (_, old)) in enumerate(zip(rows, self._rows, strict=True)):
                for column, (a, b) in enumerate(zip(new, old, strict=True)):
                    if a != b:
                        self.update_cell_at(Coordinate(index, column), a)
            self._rows = rows
            return
        selected = self.selected_key()
        self.clear()
        for key, cells in rows:
            self.add_row(*cells, key=key)
        self._rows = rows
        if selected is not None:
            self.select_key(selected)
