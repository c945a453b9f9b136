"""Screens pushed over the main screen: the job detail screen and the dialogs (confirm, enqueue)."""

from __future__ import annotations

from textual.screen import Screen


class LiveScreen(Screen[None]):
    """A screen that reads the database itself: the app asks it to read again after an action."""

    def poll_now(self) -> None:
        raise NotImplementedError
