"""The typer-free fast path of the `djobs` executable: the short commands (enqueue, reads, pause, cancel…)
and Tab presses.

Importing typer alone takes most of the 150 ms a `djobs enqueue` from cron or a shell loop, a `djobs
jobs` or `djobs health` from a monitoring script, and each Tab press, may take. So `main` first reads the
command line against `spec.COMMANDS` (the Typer app's command tree, generated from it by specgen.py) and
answers the cases it fully understands:

- `djobs [global options] COMMAND [words] [options]` for a command of `COMMANDS`: every command that
  needs no handler code and does not run on (enqueue without --wait, the read commands, cancel, retry,
  purge, signal, pause, resume, limits, dlq, events without --follow, schedules), without --help, --debug,
  `--`, a short option glued to its value, a value that looks like an option or an option value read from
  the environment that Typer would convert: the options are converted as Typer converts them, and the
  command body is the one the Typer command runs (`produce.enqueue_job`, the functions of reads.py and
  acts.py), errors mapped by the same `common.report`;
- a Tab press (`_DJOBS_COMPLETE=complete_bash|zsh|fish`) on a command name, an option name, or a value
  whose completer is a provider of complete.py or a choice, answered in the format Typer's completion
  classes print.

Anything else, or anything it is unsure of, raises `Defer` before any side effect, and the Typer app runs
as it always did: its output and exit codes stay the reference (tests/test_cli_fast.py compares both).
"""

from __future__ import annotations

import atexit
import os
import re
import sys
import threading
from typing import Any

from djobs.cli import spec

HOISTED = ("--json", "--debug", "--wide")  # as djobs/cli/app.py hoists them
_INT = re.compile(r"[+-]?[0-9]+")


class Defer(Exception):
    """The fast path does not fully understand this command line: the Typer app answers."""


def main() -> None:
    """The console script: the fast path, else the Typer app."""
    try:
        if os.environ.get("_DJOBS_COMPLETE"):
            code = complete(os.environ["_DJOBS_COMPLETE"])
        else:
            code = run(sys.argv[1:])
    except Defer:
        from djobs.cli.app import main as typer_main

        typer_main()
        return
    _leave(code)


def _leave(code: int) -> None:
    """Exit with `code`. As the `djobs` executable, once no user code ran (no handler module imported), no
    thread but this one is left and the exit hooks have run, skip the interpreter's teardown of the ~150
    modules imported (about 10 ms of an enqueue): nothing is left to write or close. Called any
    other way (`djobs.cli.main()` from a program), it raises SystemExit as ever."""
    common = sys.modules.get("djobs.cli.common")
    user_code = common is not None and common.USER_CODE
    if not user_code and _as_script() and threading.active_count() == 1:
        atexit._run_exitfuncs()  # logging's shutdown and any other hook registered (an exporter's flush)
        try:
            sys.stdout.flush()
        except BrokenPipeError:
            code = 1 if code == 0 else code
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


def _as_script() -> bool:
    """This process is the `djobs` executable (the console script) or `python -m djobs`."""
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    return os.path.basename(getattr(main, "__file__", "") or "") == "djobs" or getattr(spec, "name", None) == "djobs.__main__"


# --------------------------------------------------------------------------------------- parsing


def _lookup(command: dict[str, Any], name: str) -> dict[str, Any] | None:
    for option in command["options"]:
        if name in option["names"] or name in option["secondary"]:
            return option
    return None


def _parse(
    command: dict[str, Any], args: list[str], *, stop_at_word: bool, completing: bool = False
) -> tuple[dict[str, Any], list[str], int]:
    """Options of `command` in `args` (name → list of values; a flag's value is True) and its positional
    words, click's way. With `stop_at_word`, stops at the first word (a group's subcommand): returns its
    index. When `completing`, a last option still waiting for its value is left for the Tab to complete.
    Raises Defer on anything unusual."""
    given: dict[str, list[Any]] = {}
    words: list[str] = []
    i = 0
    while i < len(args):
        token = args[i]
        if token == "--":
            raise Defer
        if not token.startswith("-") or token == "-":
            if stop_at_word:
                return given, words, i
            words.append(token)
            i += 1
            continue
        name, eq, value = token.partition("=") if token.startswith("--") else (token, "", "")
        option = _lookup(command, name)
        if option is None or option["eager"] or option["hidden"] or option["nargs"] != 1:
            raise Defer  # --help, --version, an unknown or unusual option: Typer says what it says
        if not option["takes_value"]:
            if eq or name in option["secondary"]:
                raise Defer
            given.setdefault(option["dest"], []).append(True)
            i += 1
            continue
        if not eq:
            if i + 1 >= len(args):
                if completing:
                    break
                raise Defer
            value = args[i + 1]
            i += 1
        if value.startswith("-") and value != "-":
            raise Defer
        given.setdefault(option["dest"], []).append(value)
        i += 1
    return given, words, len(args)


def _hoist(args: list[str]) -> tuple[list[str], list[str]]:
    """(the global flags anywhere in `args`, the rest), as `hoist_global_flags` in app.py; Defer on `--`."""
    if "--" in args:
        raise Defer
    return [a for a in args if a in HOISTED], [a for a in args if a not in HOISTED]


def _convert(option: dict[str, Any], value: str) -> Any:
    """`value` converted as djobs/cli/params.py converts it, for the plain forms only (else Defer)."""
    kind = option.get("type")
    if kind == "str":
        return value
    if kind == "int" and _INT.fullmatch(value):
        number = int(value, 10)
        low, high = option["min"], option["max"]
        if (low is None or number >= low) and (high is None or number <= high):
            return number
    if kind == "choice" and value in option["choices"]:
        return value
    raise Defer


def _values(command: dict[str, Any], given: dict[str, list[Any]], only: tuple[str, ...] = ()) -> dict[str, Any]:
    """Every option's value (or `only` these): given, else from its environment variable (plain strings
    only), else its default."""
    out: dict[str, Any] = {}
    for option in command["options"]:
        dest = option["dest"]
        if dest == "help" or (only and dest not in only):
            continue
        if dest in given:
            if not option["takes_value"]:
                out[dest] = True
            elif option["multiple"]:
                out[dest] = [_convert(option, v) for v in given[dest]]
            else:
                out[dest] = _convert(option, given[dest][-1])  # the last one wins, as in click
            continue
        envvar = option["envvar"]
        if envvar and os.environ.get(envvar):
            if option["type"] != "str" or option["multiple"] or not isinstance(envvar, str):
                raise Defer  # Typer converts it (booleans, numbers, lists split on spaces)
            out[dest] = os.environ[envvar]
        elif option.get("required"):
            raise Defer  # Typer says it is missing
        else:
            out[dest] = option["default"]
    return out


# ------------------------------------------------------------------------------------- commands


def _enqueue(words: list[str], opts: dict[str, Any]) -> Any:
    if len(words) != 1 or opts["wait"] or opts["timeout"] is not None:
        raise Defer  # a wait outlasts any start-up: Typer's way

    def run(st: Any) -> None:
        from djobs.cli import produce

        _, job_id = produce.enqueue_job(st, words[0], **opts)
        produce.print_id(st, job_id)

    return run


def _body(module: str, name: str, positional: int | tuple[int, ...] = 0, *, unless: tuple[str, ...] = ()) -> Any:
    """The function `name` of cli/`module`.py (reads or acts), taking the command's `positional` words (a
    count, or the counts allowed) and its options; Defer when any option of `unless` is given."""
    allowed = positional if isinstance(positional, tuple) else (positional,)

    def bind(words: list[str], opts: dict[str, Any]) -> Any:
        if len(words) not in allowed or any(opts.pop(option) for option in unless):
            raise Defer

        def run(st: Any) -> int | None:
            from djobs.cli import acts, reads

            return getattr(acts if module == "acts" else reads, name)(st, *words, **opts)

        return run

    return bind


# The commands the fast path runs: path → bind(positional words, options) → run(State) → an exit code
# (None: 0), or Defer. Every command that needs no handler code, except the long-running ones.
COMMANDS = {
    "enqueue": _enqueue,
    "jobs": _body("reads", "jobs"),
    "why": _body("reads", "why", 1),
    "workers": _body("reads", "workers"),
    "inspect": _body("reads", "inspect", (0, 1)),
    "schedules": _body("reads", "schedules"),
    "health": _body("reads", "health"),
    "events": _body("reads", "events", unless=("follow",)),
    "limits": _body("reads", "limits"),
    "limits show": _body("reads", "limits", 1),
    "dlq": _body("reads", "dlq"),
    "cancel": _body("acts", "cancel", 1),
    "retry": _body("acts", "retry", 1),
    "purge": _body("acts", "purge"),
    "signal": _body("acts", "signal", 2),
    "pause job": _body("acts", "pause_job", 1),
    "pause queue": _body("acts", "pause_queue", 1),
    "pause worker": _body("acts", "pause_worker", 1),
    "pause schedule": _body("acts", "pause_schedule", 1),
    "resume job": _body("acts", "resume_job", 1),
    "resume queue": _body("acts", "resume_queue", 1),
    "resume worker": _body("acts", "resume_worker", 1),
    "resume schedule": _body("acts", "resume_schedule", 1),
    "limits set": _body("acts", "set_limits", 1),
    "limits clear": _body("acts", "clear_limits", 1),
    "dlq requeue": _body("acts", "requeue_failed"),
    "schedules rm": _body("acts", "remove_schedule", 1),
}
# A first word that is no subcommand of these groups is their default subcommand's argument, as the
# app's group class resolves it (`djobs limits QUEUE` is `djobs limits show QUEUE`).
_DEFAULT_SUB = {"limits": "show"}


def _resolve(args: list[str]) -> tuple[str, list[str], dict[str, list[Any]]]:
    """(the command's path, its arguments, the options given to it) for `args` starting at the command
    word, walking into subcommands as click does; Defer on what it does not handle."""
    path, rest = args[0], args[1:]
    command = spec.COMMANDS.get(path)
    if command is None:
        raise Defer
    while command.get("commands"):
        given, _, at = _parse(command, rest, stop_at_word=True)
        if at >= len(rest):
            return path, [], given  # no word: the group's own callback (a listing), or Typer's help
        subs = {c["name"] for c in command["commands"]}
        word = rest[at]
        if given:
            raise Defer  # group options before a subcommand go to the group's callback: Typer's way
        if word in subs:
            path, rest = f"{path} {word}", rest[at + 1 :]
        elif path in _DEFAULT_SUB:
            path, rest = f"{path} {_DEFAULT_SUB[path]}", rest[at:]
        else:
            raise Defer  # no such command: Typer says so
        command = spec.COMMANDS[path]
    given, words, _ = _parse(command, rest, stop_at_word=False)
    return path, words, given


def run(argv: list[str]) -> int:
    """`djobs [global options] COMMAND [words] [options]` for a command of COMMANDS: the exit code, or Defer."""
    flags, args = _hoist(argv)
    root = spec.COMMANDS[""]
    given, _, at = _parse(root, args, stop_at_word=True)
    for flag in flags:
        given.setdefault(_lookup(root, flag)["dest"], []).append(True)  # type: ignore[index]
    if at >= len(args):
        raise Defer
    glob = _values(root, given)
    path, words, given = _resolve(args[at:])
    if path not in COMMANDS:
        raise Defer
    body = COMMANDS[path](words, _values(spec.COMMANDS[path], given))
    if glob["debug"]:
        raise Defer  # a traceback: Typer's way

    from djobs.cli import common

    common.ONE_SHOT = True
    common.WIDE = glob["wide"]
    st = common.State(config_path=glob["config"], database=glob["database"], json=glob["json_"])
    try:
        code = body(st)
        sys.stdout.flush()
        return common.EXIT_OK if code is None else code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return _broken_pipe()
    except Exception as exc:
        return common.report(exc)
    finally:
        st.close()


def _broken_pipe() -> int:
    """As click's main on EPIPE: no more writes to the closed pipe, exit 1."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    return 1


# ------------------------------------------------------------------------------------ completion


def complete(instruction: str) -> int:
    """One Tab press: print the offers as Typer's completion class for the shell would; or Defer."""
    action, _, shell = instruction.partition("_")
    if action != "complete" or shell not in ("bash", "zsh", "fish"):
        raise Defer
    args, incomplete = _completion_args(shell)
    items = _offers(args, incomplete)
    if any("\x1b" in value + help_text for value, help_text in items):
        raise Defer  # click strips escape sequences from what it echoes
    if shell == "bash":
        out = "\n".join(value for value, _ in items)
    elif shell == "zsh":
        out = _zsh(items)
    else:
        action = os.environ.get("_TYPER_COMPLETE_FISH_ACTION", "")
        if action == "is-args":
            return 0 if items else 1
        width = _rich_width()
        shown = [v + "\t" + _plain(re.sub(r"\s", " ", h), width) if h else v for v, h in items]
        out = "\n".join(shown) if action == "get-args" else ""
    sys.stdout.write(out + "\n")
    sys.stdout.flush()
    return 0


def _split(text: str) -> list[str]:
    """click's `split_arg_string`: shlex words, keeping an unfinished quoted last word as it is."""
    import shlex

    lex = shlex.shlex(text, posix=True)
    lex.whitespace_split = True
    lex.commenters = ""
    out: list[str] = []
    try:
        out.extend(lex)
    except ValueError:
        out.append(lex.token)
    return out


def _completion_args(shell: str) -> tuple[list[str], str]:
    """(the complete words after `djobs`, the word being completed), as Typer's classes read them."""
    if shell == "bash":
        try:
            words, cword = _split(os.environ["COMP_WORDS"]), int(os.environ["COMP_CWORD"])
        except (KeyError, ValueError):
            raise Defer from None
        if cword < 1:
            raise Defer
        return words[1:cword], words[cword] if cword < len(words) else ""
    line = os.environ.get("_TYPER_COMPLETE_ARGS", "")
    words = _split(line)[1:]
    if words and not line.endswith(" "):
        return words[:-1], words[-1]
    return words, ""


def _offers(args: list[str], incomplete: str) -> list[tuple[str, str]]:
    """(value, help) pairs, as click's `_resolve_context` and `_resolve_incomplete` would find them."""
    flags, args = _hoist(args)
    path, command = "", spec.COMMANDS[""]
    given: dict[str, list[Any]] = {}
    glob: dict[str, Any] | None = None
    while True:
        given, words, at = _parse(command, args, stop_at_word="commands" in command, completing=True)
        if path == "":
            for flag in flags:
                given.setdefault(_lookup(command, flag)["dest"], []).append(True)  # type: ignore[index]
            glob = _values(command, given, only=("config", "database"))
        if "commands" not in command or at >= len(args):
            break
        path = f"{path} {args[at]}".strip()
        if path not in spec.COMMANDS:
            raise Defer
        command, args = spec.COMMANDS[path], args[at + 1 :]
    assert glob is not None
    if incomplete == "=":
        incomplete = ""
    elif "=" in incomplete and incomplete.startswith("-"):
        name, _, incomplete = incomplete.partition("=")
        args = [*args, name]
    if incomplete.startswith("-"):
        return _names(command, given, incomplete)
    last = _lookup(command, args[-1]) if args and args[-1].startswith("-") else None
    if last is not None and last["takes_value"] and args[-1] in last["names"]:
        return _value_offers(last, glob, incomplete)
    if last is not None and last["takes_value"] and args[-1] in last["secondary"]:
        raise Defer
    if "commands" in command:
        return _names(command, given, incomplete)
    taken = len(words)
    for argument in command["arguments"]:
        if argument["nargs"] == -1 or taken == 0:
            return _value_offers(argument, glob, incomplete)
        if argument["nargs"] != 1:
            raise Defer
        taken -= 1
    return _names(command, given, incomplete)


def _names(command: dict[str, Any], given: dict[str, Any], incomplete: str) -> list[tuple[str, str]]:
    """A group's visible subcommands, then (for an incomplete starting with a non-alphanumeric) the
    options not given yet (or repeatable), as click's `shell_complete` of a command or group."""
    out = [(c["name"], c["help"]) for c in command.get("commands", ()) if c["name"].startswith(incomplete) and not c["hidden"]]
    if incomplete and not incomplete[0].isalnum():
        for option in command["options"]:
            if option["hidden"] or (not option["multiple"] and option["dest"] in given):
                continue
            out += [(n, option["help"] or "") for n in option["names"] + option["secondary"] if n.startswith(incomplete)]
    return out


def _value_offers(param: dict[str, Any], glob: dict[str, Any], incomplete: str) -> list[tuple[str, str]]:
    how = param["complete"]
    if how == "none":
        return []
    if how == "choice" and "choices" in param:
        return [(c, "") for c in param["choices"] if c.startswith(incomplete)]
    if how is None or not how.startswith("provider:"):
        raise Defer
    from djobs.cli import common
    from djobs.cli import complete as providers

    common.ONE_SHOT = True
    kind = how.partition(":")[2]
    st = common.State(config_path=glob["config"], database=glob["database"])
    return providers.offer(st, kind, providers.PROVIDERS[kind], incomplete)


def _zsh(items: list[tuple[str, str]]) -> str:
    """Typer's ZshComplete output. Typer renders each help through rich (markup, emoji codes, wrapping at
    the terminal's width), as for fish; the fast path answers only when that leaves the help unchanged."""
    if not items:
        return "_files"

    def escape(s: str) -> str:
        return s.replace('"', '""').replace("'", "''").replace("$", "\\$").replace("`", "\\`").replace(":", r"\\:")

    width = _rich_width()
    lines = []
    for value, help_text in items:
        if help_text:
            lines.append(f'"{escape(value)}":"{_plain(escape(help_text), width)}"')
        else:
            lines.append(f'"{escape(value)}"')
    return "_arguments '*: :((" + "\n".join(lines) + "))'"


def _plain(text: str, width: int) -> str:
    """`text` as Typer's rich rendering of a completion help leaves it, or Defer when rich would change it
    (markup in brackets, non-ASCII, a line it would wrap)."""
    if not text.isascii() or not text.isprintable() or "[" in text or len(text) >= width - 1:
        raise Defer
    return text


def _rich_width() -> int:
    """The width rich would wrap Typer's help text at: $TERMINAL_WIDTH, else $COLUMNS, else the terminal's."""
    for name in ("TERMINAL_WIDTH", "COLUMNS"):
        text = os.environ.get(name, "")
        if text:
            if not text.isdigit():
                raise Defer
            return int(text)
    for fd in (0, 1, 2):
        try:
            return os.get_terminal_size(fd).columns
        except OSError:
            continue
    return 80
