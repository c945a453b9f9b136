"""The line above the footer: connected or not, when the data was read, what the jobs table shows."""

from __future__ import annotations

from rich.markup import escape
from textual.widgets import Static


class StatusLine(Static):
    def show_connected(self, text: str) -> None:
        self.remove_class("-disconnected")
        self.update(f"[b green]●[/] connected · {text}", layout=False)

    def show_disconnected(self, error: str, retry_in: float) -> None:
        self.add_class("-disconnected")
        self.update(
            f"[b]✖ disconnected[/]: {escape(error)} · retrying in {retry_in:.0f}s (showing the last data read)"
        )
