"""Shared CLI plumbing: global options state, config loading, opening the Queue, errors → exit codes.

Every command module (and `djobs/cli/proof.py`) uses these helpers so the commands stay thin::

    from djobs.cli import common

    @app.command()
    def thing(ctx: typer.Context) -> None:
        state = common.state(ctx)
        queue = common.open_queue(state)          # config applied, database opened
        common.output(state, data, human=lambda: render.table(...))

Errors are not handled in the commands: `DjobsGroup.invoke` (in `djobs/cli/app.py`) maps any exception to
one line on stderr and an exit code with `exit_code_for`; `--debug` shows the traceback instead.

Only `djobs.cli` imports typer. Nothing here imports peewee, rich or the core at module import time: Tab
completion runs `djobs` on every key press.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import typer

if TYPE_CHECKING:
    from djobs.config import Config
    from djobs.queue import Queue

# Exit codes (75 and 78 as in sysexits.h).
EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_UNAVAILABLE = 75
EXIT_CONFIG = 78

DEFAULT_DATABASE = "sqlite:///djobs.db"


@dataclass
class State:
    """The global options of one `djobs` invocation (stored on the root context's `obj`).

    `config_path` is what the user gave (`--config`/`DJOBS_CONFIG`), `database` the `--database` override.
    The loaded config and the opened Queue are cached here so a command pays for them once.
    """

    config_path: str | None = None
    database: str | None = None
    json: bool = False
    debug: bool = False
    _config: Config | None = field(default=None, repr=False)
    _config_loaded: bool = field(default=False, repr=False)
    _queue: Queue | None = field(default=None, repr=False)

    def config(self) -> Config | None:
        """The discovered config (None when there is no config file), validated; raises ConfigError."""
        if not self._config_loaded:
            from djobs import config as cfg

            path = cfg.discover(self.config_path)
            self._config = cfg.load(path) if path is not None else None
            self._config_loaded = True
        return self._config

    def database_url(self) -> str:
        """`--database`, else the config's `[djobs] database`, else the embedded `./djobs.db`."""
        if self.database:
            return self.database
        conf = self.config()
        if conf is not None and conf.database:
            return conf.database
        return DEFAULT_DATABASE

    def close(self) -> None:
        """Close the storage opened by `open_queue`, if any."""
        if self._queue is not None:
            try:
                self._queue.storage.close()
            finally:
                self._queue = None


def state(ctx: typer.Context) -> State:
    """The `State` of this invocation, from any (sub)command's context."""
    root = ctx.find_root()
    if not isinstance(root.obj, State):
        root.obj = State()
    return root.obj


def open_queue(st: State, *, apply_config: bool = True) -> Queue:
    """Open the database and return a `djobs.Queue` with the config applied.

    Applying the config imports `[djobs] modules`, registers `[jobs.*]` handlers and `[workflows.*]`, and
    declares `[schedules.*]`. Commands that only read the database still apply it, so job types named in
    the config are known (e.g. `enqueue` rejects unknown types).
    """
    if st._queue is not None:
        return st._queue
    import djobs
    from djobs import config as cfg

    conf = st.config() if apply_config else None
    if conf is not None:
        # Handler modules are imported before the Queue exists, so @djobs.job registrations are seen.
        cfg.import_modules(conf)
    store = djobs.connect(st.database_url())
    try:
        queue = djobs.Queue(store)
        if conf is not None:
            cfg.apply(conf, queue)
    except BaseException:
        store.close()
        raise
    st._queue = queue
    return queue


def exit_code_for(exc: BaseException) -> int | None:
    """The exit code for an exception djobs knows, or None for an unexpected one (a bug)."""
    import djobs

    if isinstance(exc, djobs.ConfigError):
        return EXIT_CONFIG
    if isinstance(exc, djobs.StorageUnavailable):
        return EXIT_UNAVAILABLE
    if isinstance(exc, djobs.UnknownJobType | UsageProblem | TypeError | ValueError | json.JSONDecodeError):
        return EXIT_USAGE
    if isinstance(exc, djobs.JobNotFound | djobs.DuplicateJob | OperationFailed | TimeoutError):
        return EXIT_FAILURE
    for name in ("JobFailedError", "JobCancelledError"):
        cls = getattr(djobs, name, None)
        if cls is not None and isinstance(exc, cls):
            return EXIT_FAILURE
    return None


def error_message(exc: BaseException) -> str:
    """One line for stderr: the exception's message with newlines folded.

    A config with several problems shows the first and points to `djobs config check` for the rest.
    """
    import djobs

    lines = [line.strip() for line in str(exc).splitlines() if line.strip()] or [type(exc).__name__]
    if len(lines) > 1 and isinstance(exc, djobs.ConfigError):
        return f"{lines[0]} (and {len(lines) - 1} more; see `djobs config check`)"
    return "; ".join(lines)


class UsageProblem(Exception):
    """Bad input found by the CLI itself (bad JSON, bad duration, bad time): exit 2."""


class OperationFailed(Exception):
    """The requested operation did not succeed (e.g. retry of a running job): exit 1."""


def fail(message: str, code: int = EXIT_FAILURE) -> typer.Exit:
    """Print `djobs: message` on stderr and return the `typer.Exit` to raise: `raise fail(...) from None`."""
    print(f"djobs: {message}", file=sys.stderr)
    return typer.Exit(code=code)


def to_jsonable(value: Any) -> Any:
    """Plain JSON values from djobs records (the library's one conversion)."""
    from djobs.codec import jsonable

    return jsonable(value)


def print_json(value: Any) -> None:
    """One JSON document on stdout."""
    sys.stdout.write(json.dumps(to_jsonable(value), indent=2, sort_keys=False) + "\n")
    sys.stdout.flush()


def output(st: State, data: Any, human: Callable[[], None]) -> None:
    """`--json`: print `data` as one JSON document; otherwise call `human()` to render for people."""
    if st.json:
        print_json(data)
    else:
        human()


def env_flag(name: str) -> bool:
    """True when the environment variable `name` holds a true-ish value."""
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")
