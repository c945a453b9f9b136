"""Modal dialogs: a yes/no confirmation for actions that cannot be undone, the enqueue form and the form
that sends a signal to a job."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from rich.markup import escape
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Footer, Input, Label, Select, Static

from djobs import validate


class ConfirmScreen(ModalScreen[bool]):
    """Ask before doing something that cannot be undone. Dismisses with True for yes."""

    BINDINGS = [
        Binding("y", "answer(True)", "Yes"),
        Binding("n", "answer(False)", "No"),
        Binding("escape", "answer(False)", "No"),
    ]

    def __init__(self, question: str) -> None:
        super().__init__(classes="dialog-screen")
        self.question = question

    def compose(self) -> ComposeResult:
        with Vertical(id="confirm", classes="dialog"):
            yield Static(self.question, id="confirm-question")
            with Horizontal(classes="buttons"):
                yield Button("Yes (y)", variant="error", id="yes")
                yield Button("No (n)", variant="primary", id="no")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#no", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(event.button.id == "yes")

    def action_answer(self, answer: bool) -> None:
        self.dismiss(answer)


class _FormScreen(ModalScreen[Any]):
    """A modal form: Enter or the submit button reads it (`read_form`, ValueError shown under the form
    at `ERROR_ID`), Escape or the other button dismisses it with None."""

    ERROR_ID = ""

    def read_form(self) -> Any:
        raise NotImplementedError

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "submit":
            self.action_submit()
        else:
            self.action_cancel()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.action_submit()

    def action_cancel(self) -> None:
        self.dismiss(None)

    def action_submit(self) -> None:
        try:
            request = self.read_form()
        except ValueError as exc:
            self.query_one(self.ERROR_ID, Static).update(f"[b red]{escape(str(exc))}[/]")
            return
        self.dismiss(request)


@dataclass(frozen=True)
class EnqueueRequest:
    type: str
    args: Any
    queue: str | None
    priority: int | None


class EnqueueScreen(_FormScreen):
    """A small form: job type (from the registered ones when there are any), JSON args validated before
    submit, optional queue and priority. Dismisses with an `EnqueueRequest`, or None when cancelled."""

    BINDINGS = [Binding("escape", "cancel", "Cancel"), Binding("ctrl+s", "submit", "Enqueue")]

    def __init__(self, job_types: list[str], queues: list[str]) -> None:
        super().__init__(classes="dialog-screen")
        self.job_types = job_types
        self.queues = queues

    def compose(self) -> ComposeResult:
        with Vertical(id="enqueue", classes="dialog"):
            yield Static("[b]Enqueue a job[/]", classes="dialog-title")
            with Grid(id="enqueue-form"):
                yield Label("type")
                if self.job_types:
                    yield Select(
                        [(t, t) for t in self.job_types],
                        prompt="job type",
                        allow_blank=len(self.job_types) != 1,
                        value=self.job_types[0] if len(self.job_types) == 1 else Select.NULL,
                        id="enqueue-type",
                    )
                else:
                    yield Input(placeholder="job type (none registered in this process)", id="enqueue-type")
                yield Label("args (JSON)")
                yield Input(value="{}", placeholder='{"to": "a@b"}', id="enqueue-args")
                yield Label("queue")
                yield Input(
                    placeholder="the job type's default"
                    + (f" ({', '.join(self.queues[:4])})" if self.queues else ""),
                    id="enqueue-queue",
                )
                yield Label("priority")
                yield Input(placeholder="the job type's default", id="enqueue-priority", type="integer")
            yield Static("", id="enqueue-error")
            with Horizontal(classes="buttons"):
                yield Button("Enqueue (ctrl+s)", variant="success", id="submit")
                yield Button("Cancel (esc)", id="cancel")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#enqueue-type").focus()

    ERROR_ID = "#enqueue-error"

    def read_form(self) -> EnqueueRequest:
        """The form as a request; ValueError with a message for the user when something is invalid."""
        type_widget = self.query_one("#enqueue-type")
        if isinstance(type_widget, Select):
            value = type_widget.value
            job_type = "" if value is Select.NULL else str(value)
        else:
            job_type = self.query_one("#enqueue-type", Input).value.strip()
        if not job_type:
            raise ValueError("choose a job type")
        raw_args = self.query_one("#enqueue-args", Input).value.strip() or "null"
        try:
            args = json.loads(raw_args)
        except json.JSONDecodeError as exc:
            raise ValueError(f"args are not valid JSON: {exc.msg} at column {exc.colno}") from None
        queue = self.query_one("#enqueue-queue", Input).value.strip() or None
        raw_priority = self.query_one("#enqueue-priority", Input).value.strip()
        try:
            priority = int(raw_priority) if raw_priority else None
        except ValueError:
            raise ValueError(f"priority must be an integer, not {raw_priority!r}") from None
        return EnqueueRequest(job_type, args, queue, priority)


@dataclass(frozen=True)
class SignalRequest:
    name: str
    payload: Any


class SignalScreen(_FormScreen):
    """Send a signal to a job: its name (the one the job waits for, when it waits for one) and a JSON
    payload, both checked before submit. Dismisses with a `SignalRequest`, or None when cancelled."""

    BINDINGS = [Binding("escape", "cancel", "Cancel"), Binding("ctrl+s", "submit", "Send")]

    def __init__(self, job_id: str, waits_for: str | None) -> None:
        super().__init__(classes="dialog-screen")
        self.job_id = job_id
        self.waits_for = waits_for

    def compose(self) -> ComposeResult:
        with Vertical(id="signal", classes="dialog"):
            yield Static(f"[b]Send a signal to job {escape(self.job_id)}[/]", classes="dialog-title")
            with Grid(id="signal-form"):
                yield Label("name")
                yield Input(value=self.waits_for or "", placeholder="approved", id="signal-name")
                yield Label("payload (JSON)")
                yield Input(value="null", placeholder='{"by": "ann"}', id="signal-payload")
            yield Static("", id="signal-error")
            with Horizontal(classes="buttons"):
                yield Button("Send (ctrl+s)", variant="success", id="submit")
                yield Button("Cancel (esc)", id="cancel")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#signal-payload" if self.waits_for else "#signal-name").focus()

    ERROR_ID = "#signal-error"

    def read_form(self) -> SignalRequest:
        """The form as a request; ValueError with a message for the user when something is invalid."""
        name = self.query_one("#signal-name", Input).value.strip()
        if not name:
            raise ValueError("name the signal")
        try:
            validate.name("signal name", name)
        except (TypeError, ValueError) as exc:
            raise ValueError(str(exc)) from None
        raw = self.query_one("#signal-payload", Input).value.strip() or "null"
        try:
            payload = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise ValueError(f"the payload is not valid JSON: {exc.msg} at column {exc.colno}") from None
        return SignalRequest(name, payload)
