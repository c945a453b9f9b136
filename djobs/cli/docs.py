"""Generated artefacts: the man page, the shell completions and the systemd/crontab examples.

`scripts/gen-docs` writes them; `tests/test_cli_docs.py` regenerates them and fails when the committed
copies are stale. Typer vendors Click since 0.26, so click-man does not work: the man page walks
`typer.main.get_command(app)` itself. Completion scripts come from the real executable
(`_DJOBS_COMPLETE=source_bash djobs`, ...). Output is deterministic: the man page's date changes only
with its text::

    python -m djobs.cli.docs /path/to/repo      # what scripts/gen-docs runs
"""

from __future__ import annotations

import inspect
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

COMPLETIONS = {"bash": "completions/djobs.bash", "zsh": "completions/_djobs", "fish": "completions/djobs.fish"}
MAN_PAGE = "man/djobs.1"
CLI_REFERENCE = "docs/reference/cli.md"
SYSTEMD_UNIT = "examples/systemd/djobs-worker@.service"
CRONTAB = "examples/crontab"

SYSTEMD_UNIT_TEXT = """\
# djobs worker as a systemd service, one instance per queue set:
#   sudo cp djobs-worker@.service /etc/systemd/system/
#   sudo systemctl enable --now djobs-worker@default
# %i is the queue spec given to --queue (e.g. djobs-worker@emails:5).
[Unit]
Description=djobs worker (%i)
After=network-online.target postgresql.service
Wants=network-online.target

[Service]
# djobs sends READY=1 once the database is open, WATCHDOG=1 and STOPPING=1 (sd_notify).
Type=notify
NotifyAccess=main
User=djobs
WorkingDirectory=/srv/app
Environment=DJOBS_CONFIG=/srv/app/djobs.toml
ExecStart=/srv/app/.venv/bin/djobs worker --queue %i
# SIGTERM: stop claiming, let running jobs finish (drain timeout 30 s), then exit 0.
KillSignal=SIGTERM
KillMode=mixed
TimeoutStopSec=45
Restart=on-failure
RestartSec=5
# Exit 78 is a bad config: restarting will not fix it.
RestartPreventExitStatus=78
WatchdogSec=60

[Install]
WantedBy=multi-user.target
"""

CRONTAB_TEXT = """\
# djobs from cron (crontab -e). Exit codes: 0 ok, 1 failed, 2 usage, 75 database unreachable, 78 bad config.
# cron starts commands in $HOME: DJOBS_CONFIG names the config, and a relative SQLite path in it
# (database = "sqlite:///djobs.db") is taken relative to that file, so these commands use the same
# database as the systemd worker whatever the working directory.
DJOBS_CONFIG=/srv/app/djobs.toml
# Enqueue the nightly workflow for yesterday's data; the unique key makes a second run on the same day a no-op.
15 2 * * *  /srv/app/.venv/bin/djobs enqueue nightly-etl --args "{\\"day\\": \\"$(date -d yesterday +\\%F)\\", \\"regions\\": [\\"eu\\", \\"us\\"]}" --unique "etl:$(date +\\%F)" --if-exists skip
# Drain the reports queue every 10 minutes with a burst worker (exits when no work is left).
*/10 * * * *  /srv/app/.venv/bin/djobs worker --queue reports:4 --burst --no-scheduler
# Delete finished jobs older than a week, every Sunday.
30 3 * * 0  /srv/app/.venv/bin/djobs purge --older-than 7d
"""

_CONFIG_SECTION = """\
djobs reads TOML from \\fB\\-\\-config\\fR, else \\fI./djobs.toml\\fR, else \\fI$XDG_CONFIG_HOME/djobs/djobs.toml\\fR.
Without a config or \\fB\\-\\-database\\fR it uses the SQLite file \\fI./djobs.db\\fR.
Unknown tables and keys, unknown job names, bad durations, bad cron expressions, unknown time zones and
handlers that do not import are errors (exit 78) that name the file, the table and the key;
\\fBdjobs config check\\fR reports all of them.
.TP
.B [djobs]
\\fBdatabase\\fR = "sqlite:///djobs.db" (a relative path is relative to the config file) or
"postgresql://user@host/db";
\\fBmodules\\fR = ["myapp.jobs"], imported at start (they may register handlers with @djobs.job).
The directory of the config file and the working directory are put on the module path.
.TP
.B [queues.NAME]
\\fBconcurrency\\fR = 10. \\fBdjobs worker\\fR without \\fB\\-\\-queue\\fR serves these queues (else \\fIdefault\\fR).
.TP
.B [worker]
\\fBscheduler\\fR = true: whether \\fBdjobs worker\\fR also fires schedules unless \\fB\\-\\-no\\-scheduler\\fR;
\\fBdrain_timeout\\fR = "30s": how long running jobs may finish after SIGTERM/SIGINT;
\\fBstale_after\\fR = "30s": how long a worker may be silent before its jobs return to pending.
.TP
.B [tui]
\\fBrefresh\\fR = 1.0: seconds between dashboard refreshes of \\fBdjobs tui\\fR.
.TP
.B [jobs.NAME]
\\fBhandler\\fR = "module:function" (required), \\fBqueue\\fR, \\fBretries\\fR, \\fBpriority\\fR.
.TP
.B [schedules.NAME]
\\fBjob\\fR (required) and exactly one of \\fBevery\\fR = "5m", \\fBcron\\fR = "*/5 * * * *",
\\fBdaily\\fR = "02:00", \\fBweekly\\fR = "mon 09:00"; optional \\fBargs\\fR, \\fBqueue\\fR, \\fBpriority\\fR,
\\fBtimezone\\fR (IANA name; UTC by default).
.TP
.B [workflows.NAME]
\\fBsteps\\fR = ["extract", "transform", { fan_out = "load\\-partition", over = "partitions" }, "publish"];
optional \\fBqueue\\fR, \\fBretries\\fR, \\fBpriority\\fR. A workflow is a job type; each step is a durable call
whose input is the previous step's result; a fan_out step runs one sub-job per element of the list
under \\fBover\\fR in the previous result (or of the result itself without \\fBover\\fR) and passes the list
of results on. A crash mid-workflow resumes at the unfinished step.
"""

_COMPLETION_SECTION = """\
Tab completes commands and options, and from the config and the database: job types, queue names,
recent job ids (unfinished ones for \\fBcancel\\fR, failed or cancelled ones for \\fBretry\\fR), worker ids
and schedule names. \\fBdjobs completion install\\fR writes the script where your shell looks for it
(the shell comes from \\fB$SHELL\\fR, or name it) and says what, if anything, is left to do:
.TP
.B bash
\\fI~/.local/share/bash\\-completion/completions/djobs\\fR, loaded by the bash\\-completion package in new
shells (without that package, \\fBsource\\fR the file from \\fI~/.bashrc\\fR).
.TP
.B zsh
\\fI~/.zfunc/_djobs\\fR; add \\fBfpath=(~/.zfunc $fpath); autoload \\-Uz compinit && compinit\\fR to
\\fI~/.zshrc\\fR.
.TP
.B fish
\\fI~/.config/fish/completions/djobs.fish\\fR, loaded by fish in new shells.
.PP
\\fBdjobs completion show SHELL\\fR prints the script instead. Packages may install the scripts
system-wide (the wheel carries them under \\fIshare/\\fR). On PostgreSQL a Tab answers from the last
answers, kept in \\fI$XDG_CACHE_HOME/djobs/\\fR (readable by you only) and refreshed in the background
once a few seconds old, since loading the database driver would take most of a Tab's time.
"""

_EXIT_SECTION = """\
.TP
.B 0
success
.TP
.B 1
the operation failed (job failed under \\fB\\-\\-wait\\fR, job not found, duplicate under \\fB\\-\\-if\\-exists fail\\fR)
.TP
.B 2
usage or bad input (bad JSON, bad duration, unknown job type)
.TP
.B 75
database unreachable
.TP
.B 78
bad config
"""


def _roff(text: str) -> str:
    """Escape plain text for roff: backslashes, dashes, and control characters at line starts."""
    text = text.replace("\\", "\\e").replace("-", "\\-")
    return "\n".join("\\&" + line if line.startswith((".", "'")) else line for line in text.splitlines())


def _paragraphs(text: str) -> str:
    """Help text whose blank lines separate paragraphs."""
    paras = [" ".join(p.split()) for p in inspect.cleandoc(text).split("\n\n") if p.strip()]
    return "\n.PP\n".join(_roff(p) for p in paras)


def _literal(text: str) -> str:
    return ".nf\n.RS 4\n" + _roff(text.rstrip("\n")) + "\n.RE\n.fi\n"


def _option_line(param: Any, ctx: Any) -> tuple[str, str] | None:
    """The option's `--help` record (names, metavar, help with env var and default) as roff."""
    record = param.get_help_record(ctx)
    if record is None:
        return None
    names, help_text = record
    return f"\\fB{_roff(names)}\\fR", _roff(help_text)


def _usage(ctx: Any, cmd: Any) -> str:
    pieces = cmd.collect_usage_pieces(ctx)
    return f"{ctx.command_path} {' '.join(pieces)}"


def _walk(cmd: Any, ctx: Any, out: list[str]) -> None:
    for command, context in walk_commands(cmd, ctx):
        _entry(command, context, out)


def walk_commands(cmd: Any, ctx: Any) -> list[tuple[Any, Any]]:
    """Every documented command as (command, context), in help order: what the man page and the CLI
    reference in docs/ list."""
    import typer

    found: list[tuple[Any, Any]] = []
    commands = getattr(cmd, "commands", None)
    if not commands:
        return [(cmd, ctx)]
    if ctx.parent is not None and getattr(cmd, "invoke_without_command", False):
        found.append((cmd, ctx))
    for name in cmd.list_commands(ctx):
        sub = commands[name]
        if not getattr(sub, "hidden", False):
            found += walk_commands(sub, typer.Context(sub, info_name=name, parent=ctx))
    return found


def _entry(cmd: Any, ctx: Any, out: list[str]) -> None:
    out.append(f".SS {_roff(ctx.command_path)}")
    out.append(f"\\fB{_roff(_usage(ctx, cmd))}\\fR")
    out.append(".PP")
    out.append(_paragraphs(cmd.help or ""))
    for param in cmd.params:
        line = _option_line(param, ctx)
        if line is None:
            continue
        out.append(".TP")
        out.append(line[0])
        out.append(line[1])


def man_page(date: str) -> str:
    """The whole `djobs(1)` page, generated from the Typer app; `date` (YYYY-MM-DD) goes in `.TH`."""
    import typer

    from djobs.cli.app import app

    root = typer.main.get_command(app)
    ctx = typer.Context(root, info_name="djobs")
    out = [
        f'.TH DJOBS 1 "{date}" "djobs {_version()}" "User Commands"',
        ".SH NAME",
        "djobs \\- durable jobs on SQLite or PostgreSQL: enqueue, run workers, inspect, pause, schedule",
        ".SH SYNOPSIS",
        "\\fBdjobs\\fR [\\fIGLOBAL OPTIONS\\fR] \\fICOMMAND\\fR [\\fIARGS\\fR]...",
        ".SH DESCRIPTION",
        _paragraphs(root.help or ""),
        ".PP",
        "Output is for people by default (tables; colours only on a terminal) and for scripts with",
        "\\fB\\-\\-json\\fR (one JSON document on stdout). Errors are one line on stderr; a traceback only",
        "with \\fB\\-\\-debug\\fR. \\fB\\-\\-json\\fR and \\fB\\-\\-debug\\fR may also follow the command.",
        ".SH GLOBAL OPTIONS",
    ]
    for param in root.params:
        line = _option_line(param, ctx)
        if line is not None:
            out += [".TP", line[0], line[1]]
    out.append(".SH COMMANDS")
    _walk(root, ctx, out)
    out += [".SH CONFIGURATION FILE", _CONFIG_SECTION.rstrip("\n")]
    out += [
        ".SH ENVIRONMENT",
        "Every option has an environment variable, shown with the option above. The global ones:",
        ".TP",
        ".B DJOBS_CONFIG",
        "config file (\\fB\\-\\-config\\fR)",
        ".TP",
        ".B DJOBS_DATABASE_URL",
        "database URL (\\fB\\-\\-database\\fR), overrides the config",
        ".TP",
        ".B DJOBS_JSON, DJOBS_DEBUG",
        "set to 1 for \\fB\\-\\-json\\fR, \\fB\\-\\-debug\\fR",
        ".TP",
        ".B XDG_CONFIG_HOME",
        "where the user config \\fIdjobs/djobs.toml\\fR is looked for (default \\fI~/.config\\fR)",
        ".TP",
        ".B NOTIFY_SOCKET, WATCHDOG_USEC",
        "set by systemd: \\fBdjobs worker\\fR sends READY=1, WATCHDOG=1 and STOPPING=1",
    ]
    out += [".SH SHELL COMPLETION", _COMPLETION_SECTION.rstrip("\n")]
    out += [".SH EXIT STATUS", _EXIT_SECTION.rstrip("\n")]
    out += [
        ".SH EXAMPLES",
        _literal(
            "djobs init\n"
            "djobs enqueue send-email --args '{\"to\": \"a@example.com\"}' --delay 5m\n"
            "djobs enqueue nightly-etl --args @etl.json --wait --timeout 600\n"
            "djobs worker --queue default:10 --queue emails:5\n"
            "djobs why 01J...\n"
            "djobs events --follow --queue emails\n"
            "djobs --json inspect | jq '.queues'"
        ).rstrip("\n"),
        ".SS A systemd unit (" + _roff(SYSTEMD_UNIT) + ")",
        _literal(SYSTEMD_UNIT_TEXT).rstrip("\n"),
        ".SS A crontab (" + _roff(CRONTAB) + ")",
        _literal(CRONTAB_TEXT).rstrip("\n"),
        ".SH FILES",
        ".TP",
        ".I ./djobs.toml, $XDG_CONFIG_HOME/djobs/djobs.toml",
        "the config file",
        ".TP",
        ".I ./djobs.db",
        "the default SQLite database",
        ".SH SEE ALSO",
        "\\fBsystemd.service\\fR(5), \\fBcrontab\\fR(5); workflows.example.toml in the djobs sources.",
    ]
    return wrap_roff("\n".join(out) + "\n")


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("djobs")
    except PackageNotFoundError:
        return "unknown"


ROFF_WIDTH = 80


def wrap_roff(page: str) -> str:
    """Keep every input line of the page within 80 bytes (`mandoc -T lint` style): text is wrapped at
    spaces (a line never starts with a control character), and lines of literal `.nf` blocks are split
    with an escaped newline, which roff joins back."""
    import textwrap

    out: list[str] = []
    literal = False
    for line in page.splitlines():
        if line.startswith((".nf", ".fi")):
            literal = line.startswith(".nf")
        if len(line.encode()) <= ROFF_WIDTH or line.startswith((".", "'")):
            out.append(line)
        elif literal:
            out.extend(_split_literal(line))
        else:
            for piece in textwrap.wrap(line, ROFF_WIDTH, break_long_words=False, break_on_hyphens=False):
                out.append("\\&" + piece if piece.startswith((".", "'")) else piece)
    return "\n".join(out) + "\n"


def _split_literal(line: str) -> list[str]:
    pieces = []
    while len(line.encode()) > ROFF_WIDTH:
        cut = ROFF_WIDTH - 1
        while cut > 1 and (len(line[:cut]) - len(line[:cut].rstrip("\\"))) % 2 == 1:
            cut -= 1  # never split an escape sequence (an odd run of backslashes before the cut)
        pieces.append(line[:cut] + "\\")
        line = line[cut:]
    return [*pieces, line]


def committed_date(root: Path) -> str | None:
    """The `.TH` date of the committed man page under `root`, if any."""
    import re

    path = root / MAN_PAGE
    if not path.exists():
        return None
    found = re.search(r'^\.TH DJOBS 1 "(\d{4}-\d{2}-\d{2})"', path.read_text(encoding="utf-8"), re.M)
    return found.group(1) if found else None


_CLI_INTRO = """\
# Command line reference

Generated from the `djobs` program itself (`scripts/gen-docs`; a test fails when this page is stale). The
same text is in `man djobs` and in `djobs COMMAND --help`.

Output is for people by default (tables; colours only on a terminal; never cut when stdout is a pipe or
with `--wide`) and for scripts with `--json` (one JSON document on stdout). Errors are one line on stderr;
a traceback only with `--debug`. `--json`, `--debug` and `--wide` may also follow the command. Every option
can be set by the environment variable shown with it.

**Exit codes**: 0 success · 1 the operation failed (a job failed under `--wait`, no such job, a duplicate
under `--if-exists fail`) · 2 usage or bad input (bad JSON, a bad duration, a value out of range, an
unknown job type) · 75 the database is unreachable · 78 bad config (including a handler module that does
not import, and a database URL in the config that does not point at a database).

**Shell completion**: `djobs completion install` writes the script where your shell (from `$SHELL`, or
named) looks for it and says what is left to do; Tab then completes job types, queue names, recent job
ids, worker ids and schedule names from your config and database (on PostgreSQL from the last answers,
kept in `$XDG_CACHE_HOME/djobs/` and refreshed in the background once a few seconds old).

**Start-up**: a plain `djobs enqueue` (without `--wait`) and each Tab press skip loading the command-line
framework, so that cron jobs, shell loops and completion stay quick; `--help`, `--wait`, `--debug` and any
mistake in the options take the full path. The output and exit codes are the same either way.
"""


def _md_cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _md_options(params: list[Any], ctx: Any) -> list[str]:
    rows = []
    for param in params:
        record = param.get_help_record(ctx)
        if record is None:
            continue
        names, help_text = record
        rows.append(f"| `{' '.join(names.split())}` | {_md_cell(help_text)} |")
    if not rows:
        return []
    return ["", "| option | |", "|---|---|", *rows]


def cli_markdown() -> str:
    """The command line reference page of docs/, generated from the Typer app like the man page."""
    import typer

    from djobs.cli.app import app

    root = typer.main.get_command(app)
    ctx = typer.Context(root, info_name="djobs")
    out = [_CLI_INTRO.rstrip("\n"), "", "## Global options", *_md_options(root.params, ctx), "", "## Commands"]
    for command, context in walk_commands(root, ctx):
        paragraphs = [" ".join(p.split()) for p in inspect.cleandoc(command.help or "").split("\n\n") if p.strip()]
        out += ["", f"### {context.command_path}", "", "```", _usage(context, command), "```", ""]
        out += ["\n\n".join(paragraphs)]
        out += _md_options(command.params, context)
    return "\n".join(out) + "\n"


def completion_script(shell: str) -> str:
    """The completion script for `shell`, as the real executable prints it for `_DJOBS_COMPLETE`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DJOBS_")}
    env["_DJOBS_COMPLETE"] = f"source_{shell}"
    done = subprocess.run(
        [sys.executable, "-m", "djobs"], env=env, capture_output=True, text=True, check=True, timeout=60
    )
    return done.stdout


def artefacts(root: Path | None = None) -> dict[str, str]:
    """Every generated file: repository path → content.

    The man page keeps the date of the committed copy under `root` while its text is unchanged, and takes
    today's date when it changes: regenerating is deterministic, and the date says when the page changed.
    """
    import datetime

    today = datetime.date.today().isoformat()
    kept = committed_date(root) if root is not None else None
    page = man_page(kept or today)
    if root is not None and kept and (root / MAN_PAGE).read_text(encoding="utf-8") != page:
        page = man_page(today)
    files = {MAN_PAGE: page, CLI_REFERENCE: cli_markdown(), SYSTEMD_UNIT: SYSTEMD_UNIT_TEXT, CRONTAB: CRONTAB_TEXT}
    for shell, path in COMPLETIONS.items():
        files[path] = completion_script(shell)
    from djobs.cli import specgen

    files[specgen.SPEC_FILE] = specgen.spec_module()  # the fast path's copy of the command tree
    return files


def write(root: Path) -> list[str]:
    """Write every artefact under `root`; return the paths that changed."""
    changed = []
    for rel, content in artefacts(root).items():
        path = root / rel
        if not path.exists() or path.read_text(encoding="utf-8") != content:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(content, encoding="utf-8")
            changed.append(rel)
    return changed


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path.cwd()
    for rel in write(target):
        print(f"wrote {rel}")
