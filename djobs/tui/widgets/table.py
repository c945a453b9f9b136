"""`LiveTable`: a light table refreshed in place from a list of keyed rows.

Refreshing every second while a worker drains a thousand jobs a second must stay cheap, and Textual's
DataTable is not: any cell update invalidates its render cache, so every visible cell is rendered again
through a Rich console (about 8 % of a core for the jobs table alone). This table uses the line API
instead: columns have fixed widths, each row is rendered once into a `Strip` when its cells change, and
scrolling, the zebra stripes and the cursor are applied to those cached strips when a line is painted.

It keeps the logical row keys (job ids, queue names…) beside the rows, and the cursor stays on its row's
key when rows shift (new jobs arrive at the top). Up/Down/PageUp/PageDown/Home/End and clicks move it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from rich.cells import cell_len, set_cell_size
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual import events
from textual.binding import Binding, BindingType
from textual.geometry import Size
from textual.scroll_view import ScrollView
from textual.strip import Strip

if TYPE_CHECKING:
    from ..app import DjobsApp

Row = tuple[str, Sequence[Any]]


class LiveTable(ScrollView, can_focus=True):
    #: (label, width) per column; fixed widths, so an update never re-measures the table.
    COLUMNS: tuple[tuple[str, int], ...] = ()

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "live-table--header",
        "live-table--cursor",
        "live-table--even-row",
    }

    DEFAULT_CSS = """
    LiveTable {
        background: $surface;
        color: $foreground;
        & > .live-table--header {
            text-style: bold;
            background: $panel;
            color: $foreground;
        }
        & > .live-table--even-row {
            background: $surface-lighten-1 50%;
        }
        & > .live-table--cursor {
            background: $block-cursor-blurred-background;
            color: $block-cursor-blurred-foreground;
            text-style: $block-cursor-blurred-text-style;
        }
        &:focus {
            background-tint: $foreground 5%;
            & > .live-table--cursor {
                background: $block-cursor-background;
                color: $block-cursor-foreground;
                text-style: $block-cursor-text-style;
            }
        }
    }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up", "cursor(-1)", "Up", show=False),
        Binding("down", "cursor(1)", "Down", show=False),
        Binding("pageup", "page(-1)", "Page up", show=False),
        Binding("pagedown", "page(1)", "Page down", show=False),
        Binding("home", "cursor_to(0)", "First", show=False),
        Binding("end", "cursor_to(-1)", "Last", show=False),
    ]

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self._rows: list[Row] = []
        self._strips: list[Strip | None] = []
        self._header: Strip | None = None
        self.cursor_row = 0
        self._width = 1 + sum(width + 1 for _, width in self.COLUMNS)

    @property
    def djobs_app(self) -> DjobsApp:
        return self.app  # type: ignore[return-value]

    @property
    def row_count(self) -> int:
        return len(self._rows)

    # ---- data ----

    def keys(self) -> list[str]:
        """Row keys in display order."""
        return [key for key, _ in self._rows]

    def selected_key(self) -> str | None:
        """The key of the row under the cursor, or None when the table is empty."""
        if not (0 <= self.cursor_row < len(self._rows)):
            return None
        return self._rows[self.cursor_row][0]

    def select_key(self, key: str) -> bool:
        """Put the cursor on the row with this key; False when no such row is shown."""
        for index, (row_key, _) in enumerate(self._rows):
            if row_key == key:
                self.move_cursor(index)
                return True
        return False

    def sync(self, rows: list[Row]) -> None:
        """Show these rows; only rows whose cells changed are rendered again."""
        if rows == self._rows:
            return
        selected = self.selected_key()
        old, strips = self._rows, self._strips
        self._strips = [
            strips[i] if i < len(old) and _same(old[i][1], cells) else None
            for i, (_, cells) in enumerate(rows)
        ]
        self._rows = rows
        self.virtual_size = Size(self._width, len(rows) + 1)
        if selected is None or not self.select_key(selected):
            self.move_cursor(self.cursor_row)
        self.refresh()

    # ---- cursor ----

    def move_cursor(self, row: int) -> None:
        row = max(0, min(row, len(self._rows) - 1))
        if row != self.cursor_row:
            self.cursor_row = row
            self.refresh()
        visible = max(1, self.scrollable_content_region.height - 1)
        top = round(self.scroll_y)
        if row < top:
            self.scroll_to(y=row, animate=False, immediate=True)
        elif row >= top + visible:
            self.scroll_to(y=row - visible + 1, animate=False, immediate=True)

    def action_cursor(self, delta: int) -> None:
        self.move_cursor(self.cursor_row + delta)

    def action_page(self, direction: int) -> None:
        self.move_cursor(self.cursor_row + direction * max(1, self.scrollable_content_region.height - 1))

    def action_cursor_to(self, row: int) -> None:
        self.move_cursor(row if row >= 0 else len(self._rows) - 1)

    def on_click(self, event: events.Click) -> None:
        offset = event.get_content_offset(self)
        if offset is not None and offset.y >= 1:
            self.move_cursor(round(self.scroll_y) + offset.y - 1)

    def on_focus(self) -> None:
        self.refresh()

    def on_blur(self) -> None:
        self.refresh()

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._header = None
        self._strips = [None] * len(self._rows)

    # ---- painting ----

    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width
        scroll_x, scroll_y = round(self.scroll_x), round(self.scroll_y)
        base = self.rich_style
        if y == 0:
            if self._header is None:
                header = self.get_component_rich_style("live-table--header")
                self._header = self._render_cells([label for label, _ in self.COLUMNS], header)
            strip = self._header
            return strip.crop_extend(scroll_x, scroll_x + width, self._header_style())
        index = scroll_y + y - 1
        if index >= len(self._rows):
            return Strip.blank(width, base)
        cached = self._strips[index]
        if cached is None:
            cached = self._strips[index] = self._render_cells(self._rows[index][1], None)
        strip = cached
        row_style: Style | None = None
        if index % 2:
            row_style = self.get_component_rich_style("live-table--even-row")
        if index == self.cursor_row:
            cursor = self.get_component_rich_style("live-table--cursor")
            strip = Strip(Segment.apply_style(strip, post_style=cursor), strip.cell_length)
            row_style = cursor
        elif row_style is not None:
            strip = strip.apply_style(row_style)
        return strip.crop_extend(scroll_x, scroll_x + width, row_style or base)

    def _header_style(self) -> Style:
        return self.get_component_rich_style("live-table--header")

    def _render_cells(self, cells: Sequence[Any], style: Style | None) -> Strip:
        # Segments are built directly (a cell is plain text, or a Text with one style for the whole
        # cell): going through Text.render for every row was most of a refresh's painting time.
        segments = [Segment(" ", style)]
        for (_, width), cell in zip(self.COLUMNS, cells, strict=False):
            if isinstance(cell, Text) and cell.spans:
                text = cell.copy()
                text.truncate(width, overflow="ellipsis", pad=True)
                segments += text.render(self.app.console)
            else:
                cell_style = style
                if isinstance(cell, Text):
                    own = Style.parse(cell.style) if isinstance(cell.style, str) else cell.style
                    cell_style = own if style is None else style + own
                    cell = cell.plain
                segments.append(Segment(_fit(str(cell), width), cell_style))
            segments.append(Segment(" ", style))
        return Strip(segments, self._width)


def _fit(text: str, width: int) -> str:
    """Exactly `width` cells: padded, or cut with an ellipsis."""
    if "\n" in text:
        text = text.replace("\n", " ")
    if cell_len(text) <= width:
        return set_cell_size(text, width)
    return set_cell_size(text, width - 1) + "…"


def _same(a: Sequence[Any], b: Sequence[Any]) -> bool:
    return len(a) == len(b) and all(x == y and type(x) is type(y) for x, y in zip(a, b, strict=True))
