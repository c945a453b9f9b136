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

Only `djobs.cli` imports typer, and this module only when `fail` is called: the typer-free fast path
(`djobs/cli/fast.py`) uses it too. Nothing here imports typer, peewee, rich or the core at module import
time: Tab completion runs `djobs` on every key press.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import typer

    from djobs.config import Config
    from djobs.queue import Queue

# Exit codes (75 and 78 as in sysexits.h).
EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_UNAVAILABLE = 75
EXIT_CONFIG = 78

DEFAULT_DATABASE = "sqlite:///djobs.db"

# Bounds of numeric options: what both backends store (a signed 32-bit integer), and the largest listing.
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
MAX_LIMIT = 100_000


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
    _handlers_loaded: bool = field(default=False, repr=False)

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


def open_queue(st: State, *, handlers: bool = True) -> Queue:
    """Open the database and return a `djobs.Queue` (cached on `st`).

    With `handlers` (the worker, the dashboards) the config's user code is loaded: `[djobs] modules` are
    imported and `[jobs.*]` and `[workflows.*]` registered. Without it nothing of the user's is imported:
    read and control commands stay quick and work even when a handler module is broken. Schedules are
    never written here; `apply_schedules` does that for `djobs worker` and `djobs config apply`.
    """
    if st._queue is None:
        url = st.database_url()
        if not handlers:
            _skip_unused_driver(url)
        import djobs

        store = connect(url, from_config=st.database is None and st.config() is not None)
        try:
            st._queue = djobs.Queue(store)
        except BaseException:
            store.close()
            raise
    if handlers and not st._handlers_loaded:
        load_handlers(st, st._queue)
    return st._queue


def producer_queue(st: State, job_type: str) -> Queue:
    """The Queue `enqueue` writes through, with no user code loaded.

    A type declared in the config (`[jobs.*]`, `[workflows.*]`) is enqueued with the config's defaults
    without importing its handler (workers import it; they also check the args). Any other type is left
    to the library, which knows the types workers registered in the database; `enqueue` imports the
    config's modules (they may register the type with `@djobs.job`) only if it is still unknown.
    """
    queue = open_queue(st, handlers=False)
    conf = st.config()
    declared = conf.declared_job(job_type) if conf is not None else None
    if declared is not None and not queue.has_handler(job_type):
        queue.register(job_type, _runs_in_workers, **declared)
    return queue


def _runs_in_workers(args: Any) -> None:
    """Stands for a handler the config declares but this process does not import: it only enqueues."""
    raise RuntimeError("this handler runs in workers, which import it")


def load_handlers(st: State, queue: Queue) -> None:
    """Import the config's modules and register its `[jobs.*]` and `[workflows.*]` on `queue`."""
    from djobs import config as cfg

    global USER_CODE
    USER_CODE = True
    conf = st.config()
    if conf is not None:
        cfg.register(conf, queue)
    st._handlers_loaded = True


def apply_schedules(st: State, queue: Queue) -> Any:
    """Write the config's `[schedules.*]` to the database (the worker and `djobs config apply`)."""
    from djobs import config as cfg

    conf = st.config()
    if conf is None:
        return None
    load_handlers(st, queue)
    return cfg.apply_schedules(conf, queue)


def apply_flow(st: State, queue: Queue) -> dict[str, Any] | None:
    """Write the config's queue limits and `[retention]` to the database (the worker and `djobs config
    apply`); what was written, or None without a config."""
    from djobs.config.flow import apply_flow as apply

    conf = st.config()
    return None if conf is None else apply(conf, queue)


def connect(url: str, *, from_config: bool) -> Any:
    """`djobs.connect(url)`, with a bad URL or a file that is not a database said in one line.

    A URL from the config file is a config problem (exit 78); from `--database` a usage problem (exit 2).
    """
    import djobs

    try:
        return djobs.connect(url)
    except Exception as exc:  # a file that is not a database is no outage: retrying will not help (not 75)
        problem = _url_problem(url, exc)
        if problem is None:
            raise
        if from_config:
            raise djobs.ConfigError(problem) from None
        raise UsageProblem(problem) from None


def _url_problem(url: str, exc: BaseException) -> str | None:
    text = " ".join(str(exc).split())
    shown = _without_password(url)
    if isinstance(exc, ValueError) or "query parameter" in text or "connection option" in text:
        return f"bad database URL {shown}: {text}"
    if "not a database" in text or "file is encrypted" in text:
        return f"{shown}: the file is not an SQLite database (check the database URL)"
    return None


def _without_password(url: str) -> str:
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        if parts.password:
            return parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":***@")).geturl()
    except ValueError:
        pass
    return url


# Set by `main()`: this process runs one command against one database and then exits.
ONE_SHOT = False
# Set once the config's handler modules are imported: user code ran in this process (its threads and exit
# hooks are its own), so the fast path leaves through the interpreter's ordinary exit.
USER_CODE = False
# Set by `--wide`: tables never cut cells (render.py); also the case whenever stdout is not a terminal.
WIDE = False


def _skip_unused_driver(url: str) -> None:
    """On SQLite, keep peewee from importing the PostgreSQL driver (about 100 ms of a 150 ms budget).

    peewee imports psycopg at its own import whether or not PostgreSQL is used. Only in a one-shot process
    (the `djobs` executable, not a library or test process) and only for commands that run no user code
    (user code may need psycopg through peewee): the driver is hidden while peewee imports, then made
    importable again.
    """
    if not ONE_SHOT or "peewee" in sys.modules or not url.lower().startswith(("sqlite:", "sqlite3:")):
        return
    hidden = [name for name in ("psycopg", "psycopg2") if name not in sys.modules]
    for name in hidden:
        sys.modules[name] = None  # type: ignore[assignment]  # import raises ImportError
    try:
        import peewee  # noqa: F401
    finally:
        for name in hidden:
            if sys.modules.get(name, "") is None:
                del sys.modules[name]


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
    import typer

    print(f"djobs: {printable(message)}", file=sys.stderr)
    return typer.Exit(code=code)


def report(exc: BaseException) -> int:
    """One line on stderr for an exception a command raised, and the exit code it maps to (an unexpected
    exception is a bug: it says so and points to --debug). Shared by `DjobsGroup.invoke` and the fast path."""
    code = exit_code_for(exc)
    if code is None:
        print(
            f"djobs: internal error: {type(exc).__name__}: {printable(error_message(exc))}"
            " (run with --debug for the traceback)",
            file=sys.stderr,
        )
        return EXIT_FAILURE
    print(f"djobs: {printable(error_message(exc))}", file=sys.stderr)
    return code


def printable(text: str, keep_newlines: bool = False) -> str:
    """`text` safe for a terminal: control and invisible characters (escape sequences, bidi overrides,
    lone surrogates) shown escaped as `\\x1b`, `\\u202e`... Stored job data is written by anyone who can
    enqueue; human output must never let it move the cursor or recolour the screen. JSON output escapes
    on its own."""
    if text.isprintable():
        return text
    keep = "\n\t" if keep_newlines else ""
    return "".join(ch if ch.isprintable() or ch == " " or ch in keep else repr(ch)[1:-1] for ch in text)


def one_line(text: str, limit: int = 300) -> str:
    """`text` on one line (whitespace folded), printable, cut to `limit` characters with an ellipsis."""
    line = printable(" ".join(text.split()))
    return line if len(line) <= limit else line[: limit - 1] + "…"


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
