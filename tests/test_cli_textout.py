"""The CLI's text output (djobs/cli/textout.py): markup, widths, cutting and folding, colours."""

from __future__ import annotations

import io

from hypothesis import given, settings
from hypothesis import strategies as st

from djobs.cli import textout


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def output(width: int | None, color: bool = False) -> tuple[textout.Output, io.StringIO]:
    stream: io.StringIO = Tty() if width is not None else io.StringIO()
    out = textout.Output(stream)
    out.width = width if width is not None else textout.UNLIMITED
    out.color = color
    return out, stream


texts = st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=30)


@settings(max_examples=200, deadline=None)
@given(text=texts)
def test_escaped_text_shows_literally(text):
    assert textout.plain(textout.parse(textout.escape(text))) == text
    assert textout.plain(textout.parse(f"[bold red]{textout.escape(text)}[/]")) == text


def test_markup_styles_and_unknown_tags():
    assert textout.parse("a [green]b[/] [nope]c") == [("a ", ""), ("b", "green"), (" [nope]c", "")]
    assert textout.parse("[bold][red]x[/]y[/]") == [("x", "bold red"), ("y", "bold")]


def test_widths_of_wide_and_combining_characters():
    assert textout.width(textout.parse("日本")) == 4
    assert textout.width(textout.parse("e\u0301")) == 1
    assert textout.plain(textout.truncate(textout.parse("日本語テキスト"), 5)) == "日本…"


@settings(max_examples=200, deadline=None)
@given(
    rows=st.lists(st.lists(texts, min_size=4, max_size=4), min_size=1, max_size=6),
    room=st.integers(20, 140),
)
def test_a_table_fits_the_terminal_unless_its_kept_column_cannot(rows, room):
    out, stream = output(room)
    table = textout.Table("t", ["ID", "NAME", "QUEUE", "DETAIL"], keep=("ID",), flex="DETAIL")
    for row in rows:
        table.add_row(*(textout.escape(c) for c in row))
    out.table(table)
    lines = stream.getvalue().splitlines()
    kept = max(textout.width(textout.parse(textout.escape(r[0]))) for r in rows)
    limit = max(room, kept + 3 * 3 + textout.GAP * 3)
    assert all(textout.width([(line, "")]) <= limit for line in lines), (room, lines)
    for row, line in zip(rows, lines[3:], strict=False):  # ids are never cut
        assert line.startswith(row[0]) or not row[0]


def test_a_pipe_never_cuts_and_folds_wrap():
    out, stream = output(None)
    table = textout.Table(None, ["ID", "DETAIL"], keep=("ID",), flex="DETAIL")
    table.add_row("x", "y" * 500)
    out.table(table)
    assert "y" * 500 in stream.getvalue() and "…" not in stream.getvalue()
    out, stream = output(20)
    table = textout.Table(None, ["Q", "JOBS"], fold=("JOBS",))
    table.add_row("a", "pending 1 · running 2 · failed 3")
    out.table(table)
    lines = stream.getvalue().splitlines()
    assert len(lines) > 3 and all(len(line) <= 20 for line in lines)
    assert "".join(line[3:] for line in lines[2:]).replace(" ", "") == "pending1·running2·failed3"


def test_colours_only_when_asked():
    out, stream = output(80, color=True)
    out.print("[bold red]x[/] y")
    assert stream.getvalue() == "\x1b[1;31mx\x1b[0m y\n"
    out, stream = output(80, color=False)
    out.print("[bold red]x[/] y")
    assert stream.getvalue() == "x y\n"


def test_no_color_and_pipes_get_plain_text(monkeypatch):
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("TERM", "xterm")
    assert textout.Output(Tty()).color is True
    assert textout.Output(io.StringIO()).color is False
    monkeypatch.setenv("NO_COLOR", "1")
    assert textout.Output(Tty()).color is False
