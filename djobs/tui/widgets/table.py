"""`LiveTable`: a light table refreshed in place from a list of keyed rows.

Refreshing every second while a worker drains a thousand jobs a second must stay cheap, and Textual's
DataTable is not: any cell update invalidates its render cache, so every visible cell is rendered again
through a Rich console (about 8 % of a core for the jobs table alone). This table uses the line API
instead: columns have fixed widths, each row is rendered once into a `Strip` when its cells change, and
scrolling, the zebra stripes and the cursor are applied to those cached strips when a line is painted.

Column widths come from the data: a column is as wide as its widest cell (text columns up to their cap),
numbers are never cut, and when the panel is narrower than the table, text columns that allow it shrink
to their floor before the table scrolls sideways. Widths are measured again only when a refresh changes
the widest cell of a column or the panel is resized, so a steady refresh still renders changed rows only.

It keeps the logical row keys (job ids, queue names…) beside the rows, and the cursor stays on its row's
key when rows shift (new jobs arrive at the top). Up/Down/PageUp/PageDown/Home/End and clicks move it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
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


@dataclass(frozen=True)
class Column:
    """One column. Text columns are as wide as their widest cell, at most `width` (longer text is cut with
    an ellipsis) and, when the panel is too narrow, at least `shrink_to` (None: never narrower than its
    cells). Number columns are right-aligned and always as wide as their widest cell: a count is never cut.
    """

    label: str
    width: int = 0
    shrink_to: int | None = None
    number: bool = False


class LiveTable(ScrollView, can_focus=True):
    COLUMNS: tuple[Column, ...] = ()

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
        #: Widest cell per column (labels included, text capped at the column's width): the table's wish.
        self._natural = [
            cell_len(c.label) if c.number else min(cell_len(c.label), c.width) for c in self.COLUMNS
        ]
        #: Widths in use: the wish, shrunk to fit the panel where the columns allow it.
        self.widths = list(self._natural)
        self._width = _total(self.widths)

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
        natural = self._measure(rows)
        grew_scrollbar = (len(rows) + 1 > self.size.height) != (len(old) + 1 > self.size.height)
        if natural != self._natural or grew_scrollbar:
            self._natural = natural
            self.refresh(layout=True)  # a panel sized by its content (`width: auto`) follows the data
            self._fit()
        self.virtual_size = Size(self._width, len(rows) + 1)
        if selected is None or not self.select_key(selected):
            self.move_cursor(self.cursor_row)
        self.refresh()

    # ---- column widths ----

    def _measure(self, rows: list[Row]) -> list[int]:
        natural = []
        for index, column in enumerate(self.COLUMNS):
            widest = max((_cell_width(cells[index]) for _, cells in rows if index < len(cells)), default=0)
            widest = max(widest, cell_len(column.label))
            natural.append(widest if column.number else min(widest, column.width))
        return natural

    def _fit(self) -> None:
        """Choose the widths for the space the panel has now; repaint everything when they change."""
        space = self.size.width
        if len(self._rows) + 1 > self.size.height:  # the vertical scrollbar takes its share
            space -= self.styles.scrollbar_size_vertical
        widths = shrink(self.COLUMNS, self._natural, space)
        if widths != self.widths:
            self.widths = widths
            self._width = _total(widths)
            self._header = None
            self._strips = [None] * len(self._rows)
            self.virtual_size = Size(self._width, len(self._rows) + 1)
            self.refresh()

    def get_content_width(self, container: Size, viewport: Size) -> int:
        # What `width: auto` asks: the unshrunk table, plus the vertical scrollbar when the rows need one.
        gutter = self.styles.scrollbar_size_vertical if len(self._rows) + 1 > container.height else 0
        return _total(self._natural) + gutter

    def on_resize(self) -> None:
        self._fit()

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
                self._header = self._render_cells([c.label for c in self.COLUMNS], header)
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
        for column, width, cell in zip(self.COLUMNS, self.widths, cells, strict=False):
            if not width:
                continue  # a column with nothing to show (no label, no cell) takes no space
            if isinstance(cell, Text) and cell.spans:
                text = cell.copy()
                if column.number:
                    text.align("right", width)
                text.truncate(width, overflow="ellipsis", pad=True)
                segments += text.render(self.app.console)
            else:
                cell_style = style
                if isinstance(cell, Text):
                    own = Style.parse(cell.style) if isinstance(cell.style, str) else cell.style
                    cell_style = own if style is None else style + own
                    cell = cell.plain
                segments.append(Segment(fit(str(cell), width, right=column.number), cell_style))
            segments.append(Segment(" ", style))
        return Strip(segments, self._width)


def shrink(columns: Sequence[Column], natural: Sequence[int], space: int) -> list[int]:
    """Widths for `space` cells: the natural ones while they fit; otherwise the rightmost shrinkable text
    columns give up width first, down to their floor. Whatever still does not fit scrolls sideways."""
    widths = list(natural)
    excess = _total(widths) - space
    for index in reversed(range(len(columns))):
        if excess <= 0:
            break
        floor = columns[index].shrink_to
        if floor is None or columns[index].number or widths[index] <= floor:
            continue
        give = min(excess, widths[index] - floor)
        widths[index] -= give
        excess -= give
    return widths


def fit(text: str, width: int, *, right: bool = False) -> str:
    """Exactly `width` cells: padded (on the left when `right`), or cut with an ellipsis."""
    if "\n" in text:
        text = text.replace("\n", " ")
    length = cell_len(text)
    if length <= width:
        return " " * (width - length) + text if right else set_cell_size(text, width)
    return set_cell_size(text, width - 1) + "…"


def _total(widths: Sequence[int]) -> int:
    """The table's width: a leading space, then each shown column and the space after it."""
    return 1 + sum(w + 1 for w in widths if w)


def _cell_width(cell: Any) -> int:
    if isinstance(cell, Text):
        return cell.cell_len
    text = str(cell)
    return cell_len(text.replace("\n", " ") if "\n" in text else text)


def _same(a: Sequence[Any], b: Sequence[Any]) -> bool:
    return len(a) == len(b) and all(x == y and type(x) is type(y) for x, y in zip(a, b, strict=True))
