"""Text for people on a terminal or in a pipe: a small markup, display widths, and tables.

The CLI's tables are simple (a title, a header, a rule, rows) and its commands must start quickly, so they
are drawn here instead of with rich (whose import alone costs a tenth of a command's budget). Markup is a
subset of rich's: `[bold]`, `[red]`, `[bold red]`, `[dim]` … closed by `[/]`; a backslash makes the next
bracket or backslash literal (`escape` makes any text safe to embed). Colours are written only to a
terminal, and never with `NO_COLOR` set.

    out = Output.stdout()
    table = Table("jobs", ["ID", "STATUS"], keep=("ID",))
    table.add_row(escape(job_id), "[green]completed[/]")
    out.table(table)
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TextIO

_CODES = {"bold": "1", "dim": "2", "red": "31", "green": "32", "yellow": "33", "blue": "34", "magenta": "35",
          "cyan": "36"}  # fmt: skip
_TAG = re.compile(r"\\([\\\[])|\[(/?)([a-z ]*)\]")
UNLIMITED = 1_000_000  # columns: wider than any row
GAP = 2  # cells between two columns

Segment = tuple[str, str]  # (text, style such as "bold red"; "" for none)


def escape(text: str) -> str:
    """`text` as markup that shows it literally."""
    return text.replace("\\", "\\\\").replace("[", "\\[")


def parse(markup: str) -> list[Segment]:
    """Markup as (text, style) segments; an unknown or unbalanced tag is kept as text."""
    out: list[Segment] = []
    styles: list[str] = []
    pos = 0
    for m in _TAG.finditer(markup):
        if m.group(1):  # \\ or \[: the character itself
            _add(out, markup[pos : m.start()] + m.group(1), styles)
        elif m.group(2):
            _add(out, markup[pos : m.start()], styles)
            if styles:
                styles.pop()
        elif m.group(3) and all(word in _CODES for word in m.group(3).split()):
            _add(out, markup[pos : m.start()], styles)
            styles.append(m.group(3))
        else:
            _add(out, markup[pos : m.end()], styles)
        pos = m.end()
    _add(out, markup[pos:], styles)
    return out


def _add(out: list[Segment], text: str, styles: list[str]) -> None:
    style = " ".join(styles)
    if text and out and out[-1][1] == style:
        out[-1] = (out[-1][0] + text, style)
    elif text:
        out.append((text, style))


def char_width(ch: str) -> int:
    """Terminal cells taken by one character: 2 for wide East Asian ones, 0 for combining marks."""
    if unicodedata.combining(ch) or unicodedata.category(ch) in ("Mn", "Me", "Cf"):
        return 0
    return 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1


def width(segments: Sequence[Segment]) -> int:
    return sum(char_width(ch) for text, _ in segments for ch in text)


def plain(segments: Sequence[Segment]) -> str:
    return "".join(text for text, _ in segments)


def truncate(segments: Sequence[Segment], limit: int) -> list[Segment]:
    """The segments cut to `limit` cells, ending with an ellipsis when anything was cut."""
    if width(segments) <= limit:
        return list(segments)
    out: list[Segment] = []
    room = max(0, limit - 1)
    for text, style in segments:
        kept = []
        for ch in text:
            w = char_width(ch)
            if w > room:
                break
            kept.append(ch)
            room -= w
        if kept:
            out.append(("".join(kept), style))
        if len(kept) < len(text):
            break
    style = out[-1][1] if out else ""
    return [*out, ("…", style)] if limit > 0 else []


def wrap(segments: Sequence[Segment], limit: int) -> list[list[Segment]]:
    """The segments folded into lines of at most `limit` cells (breaking anywhere)."""
    lines: list[list[Segment]] = [[]]
    used = 0
    for text, style in segments:
        for ch in text:
            w = char_width(ch)
            if used + w > limit and used > 0:
                lines.append([])
                used = 0
            if lines[-1] and lines[-1][-1][1] == style:
                lines[-1][-1] = (lines[-1][-1][0] + ch, style)
            else:
                lines[-1].append((ch, style))
            used += w
    return lines


@dataclass
class Table:
    """Rows of markup cells under a header. `keep` columns are never cut, `fold` columns wrap, the others
    are cut with an ellipsis; on a narrow terminal `flex` gives way first (see `plan_widths`)."""

    title: str | None
    columns: list[str]
    keep: tuple[str, ...] = ()
    fold: tuple[str, ...] = ()
    flex: str | None = None
    rows: list[list[str]] = field(default_factory=list)

    def add_row(self, *cells: str) -> None:
        self.rows.append(list(cells))


def plan_widths(natural: list[int], headers: list[int], kinds: list[str], flex: int | None, room: int) -> list[int]:
    """Column widths that fit `room` cells. In stages: `flex` down to 20 cells, the other cuttable columns
    (widest first) down to their header or 6 cells, `flex` down to 8, then every cuttable column down to
    3 cells. `keep` columns are never cut; when they alone do not fit, the sum exceeds `room`."""
    widths = list(natural)
    over = sum(widths) - room
    others = sorted((i for i, k in enumerate(kinds) if k != "keep" and i != flex), key=lambda i: -natural[i])
    flexes = [flex] if flex is not None else []
    stages = [(flexes, lambda i: 20), (others, lambda i: max(headers[i], 6)), (flexes, lambda i: 8),
              ([*flexes, *others], lambda i: 3)]  # fmt: skip
    for columns, floor in stages:
        for i in columns:
            if over <= 0:
                return widths
            cut = min(over, widths[i] - min(natural[i], floor(i)))
            if cut > 0:
                widths[i] -= cut
                over -= cut
    return widths


class Output:
    """Where human output goes: a stream, its width (unlimited in a pipe or with `wide`) and whether it
    takes colours."""

    def __init__(self, stream: TextIO, wide: bool = False) -> None:
        self.stream = stream
        tty = bool(getattr(stream, "isatty", lambda: False)())
        self.width = shutil.get_terminal_size().columns if tty and not wide else UNLIMITED
        self.color = tty and not os.environ.get("NO_COLOR") and os.environ.get("TERM") != "dumb"

    @classmethod
    def stdout(cls, wide: bool = False) -> Output:
        return cls(sys.stdout, wide)

    def render(self, segments: Sequence[Segment]) -> str:
        if not self.color:
            return plain(segments)
        return "".join(
            f"\x1b[{';'.join(_CODES[w] for w in style.split())}m{text}\x1b[0m" if style else text
            for text, style in segments
        )

    def print(self, markup: str = "") -> None:
        self.stream.write(self.render(parse(markup)) + "\n")

    def lines(self, lines: Sequence[Sequence[Segment]]) -> None:
        self.stream.write("".join(self.render(line) + "\n" for line in lines))

    def table(self, table: Table) -> None:
        """Print `table`: its title, the header, a rule and the rows, cut or folded to fit."""
        cells = [[parse(c) for c in row] for row in table.rows]
        heads = [parse(f"[bold]{escape(c)}[/]") for c in table.columns]
        headers = [width(h) for h in heads]
        natural = [max([headers[i], *(width(row[i]) for row in cells)]) for i in range(len(heads))]
        gaps = GAP * (len(natural) - 1)
        widths = natural
        if sum(natural) + gaps > self.width:
            kinds = ["keep" if c in table.keep else "cut" for c in table.columns]
            flex = table.columns.index(table.flex) if table.flex in table.columns else None
            widths = plan_widths(natural, headers, kinds, flex, self.width - gaps)
        folds = [c in table.fold for c in table.columns]
        out: list[list[Segment]] = []
        if table.title:
            out.append(parse(f"[bold]{escape(table.title)}[/]"))
        out.append(self._line([truncate(h, w) for h, w in zip(heads, widths, strict=True)], widths))
        out.append([("─" * (sum(widths) + gaps), "")])
        for row in cells:
            columns = [wrap(c, w) if fold and width(c) > w else [truncate(c, w)]
                       for c, w, fold in zip(row, widths, folds, strict=True)]  # fmt: skip
            for k in range(max(len(col) for col in columns)):
                out.append(self._line([col[k] if k < len(col) else [] for col in columns], widths))
        self.lines(out)

    @staticmethod
    def _line(cells: Sequence[Sequence[Segment]], widths: Sequence[int]) -> list[Segment]:
        line: list[Segment] = []
        last = max((i for i, c in enumerate(cells) if width(c)), default=-1)
        for i, (cell, w) in enumerate(zip(cells, widths, strict=True)):
            if i > last:
                break
            line += cell
            if i < last:
                line.append((" " * (w - width(cell) + GAP), ""))
        return line
