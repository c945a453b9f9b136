"""The root `djobs` Typer app: global options, command registration, errors mapped to exit codes.

Each command group lives in its own module with a `register(app)` function; this module only wires them.
`--json` and `--debug` may come before or after the command (`DjobsGroup.parse_args` hoists them), and
`DjobsGroup.invoke` turns any exception into one line on stderr and an exit code (a traceback only with
`--debug`).
"""

from __future__ import annotations

import importlib.util
import os
import sys
from typing import Any

import typer
from typer._click.exceptions import NoArgsIsHelpError, UsageError  # Typer vendors Click since 0.26
from typer.core import TyperGroup

from djobs.cli import common, params

# Global flags that may follow the command; they are moved in front of it before parsing.
_HOISTED_FLAGS = ("--json", "--debug", "--wide")


class DjobsGroup(TyperGroup):
    """The root command group: hoists global flags and maps errors to exit codes."""

    def main(self, *args: Any, **kwargs: Any) -> Any:
        params.install(self)  # before any value is converted: no pydantic on the way (djobs/cli/params.py)
        return super().main(*args, **kwargs)

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        if ctx.parent is None:
            args = hoist_global_flags(args)
        try:
            return super().parse_args(ctx, args)
        except UsageError as exc:
            raise _usage_exit(exc) from None

    def _main_shell_completion(self, ctx_args: Any, prog_name: str, complete_var: str | None = None) -> None:
        # With add_completion=False Typer never registers its shell classes; `_DJOBS_COMPLETE=source_bash`
        # (how completions/ is generated) and the Tab-press requests need them.
        if os.environ.get(complete_var or f"_{prog_name}_COMPLETE".replace("-", "_").upper()):
            from typer._completion_classes import completion_init

            completion_init()
        super()._main_shell_completion(ctx_args, prog_name, complete_var)

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except UsageError as exc:
            raise _usage_exit(exc) from None
        except (typer.Exit, typer.Abort, typer.TyperException, BrokenPipeError):
            raise  # BrokenPipeError (`djobs jobs | head`): Typer quiets it
        except KeyboardInterrupt:
            raise typer.Exit(code=130) from None
        except Exception as exc:
            st = common.state(ctx)
            if st.debug:
                raise
            raise typer.Exit(code=common.report(exc)) from None
        finally:
            if isinstance(ctx.obj, common.State):
                ctx.obj.close()


def _usage_exit(exc: UsageError) -> BaseException:
    """Click's usage errors as one line on stderr (exit 2); `--help` pages are left alone."""
    if isinstance(exc, NoArgsIsHelpError) or getattr(exc.ctx, "resilient_parsing", False):
        return exc
    where = exc.ctx.command_path if exc.ctx is not None else "djobs"
    message = common.one_line(exc.format_message(), limit=1000)
    print(f"djobs: {message} (see '{common.printable(where)} --help')", file=sys.stderr)
    return typer.Exit(code=common.EXIT_USAGE)


def hoist_global_flags(args: list[str]) -> list[str]:
    """Move `--json`/`--debug`/`--wide` (anywhere before a `--`) to the front: `djobs inspect ID --json`."""
    try:
        end = args.index("--")
    except ValueError:
        end = len(args)
    flags = [a for a in args[:end] if a in _HOISTED_FLAGS]
    if not flags:
        return args
    rest = [a for a in args[:end] if a not in _HOISTED_FLAGS]
    return flags + rest + args[end:]


def _version_callback(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            v = version("djobs")
        except PackageNotFoundError:  # running from a source tree that was never installed
            v = "unknown"
        print(f"djobs {v}")
        raise typer.Exit()


app = typer.Typer(
    name="djobs",
    cls=DjobsGroup,
    help="Durable jobs on SQLite or PostgreSQL: enqueue, run workers, inspect, pause, schedule.",
    epilog="--json, --debug and --wide may also follow the command. Exit codes: 0 ok, 1 failed, 2 usage or bad "
    "input, 75 database unreachable, 78 bad config.",
    no_args_is_help=True,
    add_completion=False,  # completion scripts are generated into completions/ (scripts/gen-docs)
    rich_markup_mode=None,  # plain help: `djobs --help` must not load rich
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@app.callback()
def root(
    ctx: typer.Context,
    config: str | None = typer.Option(
        None,
        "--config",
        envvar="DJOBS_CONFIG",
        metavar="PATH",
        help="Config file [default: ./djobs.toml, then $XDG_CONFIG_HOME/djobs/djobs.toml].",
    ),
    database: str | None = typer.Option(
        None,
        "--database",
        envvar="DJOBS_DATABASE_URL",
        metavar="URL",
        help="Database URL, overrides the config [default: sqlite:///djobs.db].",
    ),
    json_: bool = typer.Option(
        False, "--json", envvar="DJOBS_JSON", help="Print one JSON document on stdout (for scripts)."
    ),
    debug: bool = typer.Option(False, "--debug", envvar="DJOBS_DEBUG", help="Show tracebacks on errors."),
    wide: bool = typer.Option(
        False, "--wide", envvar="DJOBS_WIDE",
        help="Never cut table cells to the terminal's width (always so when stdout is not a terminal).",
    ),  # fmt: skip
    version: bool = typer.Option(
        False,
        "--version",
        callback=_version_callback,
        is_eager=True,
        help="Print the version and exit.",
    ),
) -> None:
    """Durable jobs on SQLite or PostgreSQL."""
    ctx.obj = common.State(config_path=config, database=database, json=json_, debug=debug)
    common.WIDE = wide


def _register_all() -> None:
    from djobs.cli import (
        completion_cmd,
        config_cmd,
        control,
        events,
        flow,
        jobs,
        ops,
        signal_cmd,
        status,
        tui,
        ui_cmd,
        worker,
    )

    for module in (config_cmd, jobs, signal_cmd, worker, control, status, events, tui, ui_cmd, completion_cmd, ops, flow):
        module.register(app)
    # bench and selftest come from djobs/cli/proof.py (the proof commands); the CLI works without them.
    if importlib.util.find_spec("djobs.cli.proof") is None:
        return
    try:
        from djobs.cli import proof

        proof.register(app)
    except Exception as exc:  # a broken optional module must not take the whole CLI down
        print(f"djobs: bench/selftest unavailable: {type(exc).__name__}: {exc}", file=sys.stderr)


_register_all()


def main() -> None:
    """Console-script entry point (`djobs`): one command against one database, then exit."""
    common.ONE_SHOT = True
    app(prog_name="djobs")
