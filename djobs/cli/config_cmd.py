"""`djobs init` and `djobs config check` / `config show`."""

from __future__ import annotations

import json
import os
import re
import sys
import tomllib
from pathlib import Path
from typing import Any

import typer

from djobs.cli import common

config_app = typer.Typer(
    name="config", help="Check or show the config file.", no_args_is_help=True, rich_markup_mode=None
)

_HEADER = """\
# djobs config — see `man djobs` and workflows.example.toml for every table.
# [jobs.NAME] handler = "module:function" registers a handler; [schedules.NAME] fires a job on a schedule;
# [workflows.NAME] steps = [...] chains jobs as durable steps. Check it with `djobs config check`.

"""


def init(
    ctx: typer.Context,
    database: str | None = typer.Option(
        None, "--database", envvar="DJOBS_DATABASE_URL", metavar="URL",
        help="Database URL to write [default: sqlite:///djobs.db].",
    ),  # fmt: skip
    force: bool = typer.Option(False, "--force", envvar="DJOBS_INIT_FORCE", help="Overwrite existing files."),
    example: str | None = typer.Option(
        None, "--example", envvar="DJOBS_INIT_EXAMPLE", metavar="NAME",
        help="Start from an example instead: etl (an annotated config, its handlers in examples/etl.py, "
        "and systemd and cron examples).",
    ),  # fmt: skip
) -> None:
    """Write a starter djobs.toml.

    Writes to --config PATH if given, else ./djobs.toml; never overwrites without --force. With --example
    etl, the example's files go beside it.
    """
    import tomli_w

    from djobs import config as cfg

    st = common.state(ctx)
    path = Path(st.config_path or cfg.CONFIG_NAME)
    url = database or st.database or common.DEFAULT_DATABASE
    if example is not None:
        files = example_files(example, path, database or st.database)
    else:
        files = {path: _HEADER + tomli_w.dumps(cfg.starter(url))}
    _, problems = cfg.validate(tomllib.loads(files[path]), path)
    assert not problems, problems  # what init writes must itself be valid
    existing = [str(p) for p in files if p.exists()]
    if existing and not force:
        raise common.OperationFailed(f"{', '.join(existing)} already exist{'s' if len(existing) == 1 else ''} "
                                     "(use --force to overwrite)")  # fmt: skip
    for target, text in files.items():
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text, encoding="utf-8")
        except OSError as exc:
            raise common.OperationFailed(f"cannot write {target}: {exc.strerror or exc}") from None
    written = cfg.load(path).database or url
    where = database_location(written)
    data = {"path": str(path), "database": tomllib.loads(files[path])["djobs"].get("database", url),
            "database_location": where, "files": [str(p) for p in files]}  # fmt: skip

    def human() -> None:
        print(common.printable(f"wrote {', '.join(str(p) for p in files)}; the database is {where}"))
        if example is not None:
            print(f"next: djobs --config {path} config check && djobs --config {path} worker --burst")

    common.output(st, data, human)


EXAMPLES = {
    "etl": {
        "workflows.example.toml": None,  # the config itself
        "examples/etl.py": "examples/etl.py",
        "examples/systemd/djobs-worker@.service": "examples/systemd/djobs-worker@.service",
        "examples/crontab": "examples/crontab",
    }
}


def example_files(name: str, config: Path, database: str | None) -> dict[Path, str]:
    """The files of example `name` (from the installed package, or the source tree), keyed by where they
    go: the config at `config` and the rest beside it."""
    from importlib.resources import files

    if name not in EXAMPLES:
        raise common.UsageProblem(f"--example: no example {name!r} (known: {', '.join(EXAMPLES)})")
    base: Any = files("djobs") / "examples"
    if not base.is_dir():  # a source checkout: the repository root holds the same layout
        base = Path(__file__).resolve().parents[2]
    out: dict[Path, str] = {}
    for source, target in EXAMPLES[name].items():
        text = (base / source).read_text(encoding="utf-8")
        if target is None:
            if database is not None:
                text = re.sub(r'(?m)^database = ".*"$', f"database = {json.dumps(database)}", text, count=1)
            out[config] = text
        else:
            out[config.parent / target] = text
    return out


def database_location(url: str) -> str:
    """Where a database URL points, for people: the SQLite file's absolute path, else the URL sans password."""
    from urllib.parse import unquote, urlsplit

    scheme, _, rest = url.partition("://")
    if scheme.lower() in ("sqlite", "sqlite3"):
        location = unquote(rest.partition("?")[0])
        return location[1:] if location.startswith("//") else os.path.abspath(location.lstrip("/") or ".")
    parts = urlsplit(url)
    if parts.password:
        parts = parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":***@"))
    return parts.geturl()


@config_app.command("check")
def check(ctx: typer.Context) -> None:
    """Validate the config and import every handler; report every problem (exit 78 if any)."""
    from djobs import config as cfg

    st = common.state(ctx)
    path = cfg.discover(st.config_path)
    if path is None:
        raise cfg.ConfigProblems(["no config file (looked for ./djobs.toml and $XDG_CONFIG_HOME/djobs/djobs.toml)"])
    problems = cfg.check(path)
    if st.json:
        common.print_json({"path": str(path), "ok": not problems, "problems": problems})
    elif problems:
        for p in problems:
            print(common.printable(p), file=sys.stderr)
    else:
        conf = cfg.load(path)
        jobs = cfg.job_names(conf)
        print(
            f"{path}: ok ({len(jobs)} jobs, {len(conf.workflows)} workflows, "
            f"{len(conf.schedules)} schedules, {len(conf.queues)} queues)"
        )
    if problems:
        raise typer.Exit(code=common.EXIT_CONFIG)


@config_app.command("apply")
def apply(ctx: typer.Context) -> None:
    """Write the config's schedules, queue limits and retention to the database; delete removed schedules.

    Workers do this when they start. Run it after editing [schedules.*], [queues.*] limits or [retention]
    to change them without restarting workers; schedules made through the library are left alone.
    """
    from djobs import config as cfg

    st = common.state(ctx)
    conf = st.config()
    if conf is None:
        raise cfg.ConfigProblems(["no config file (looked for ./djobs.toml and $XDG_CONFIG_HOME/djobs/djobs.toml)"])
    queue = common.open_queue(st)
    done = common.apply_schedules(st, queue)
    flow = common.apply_flow(st, queue) or {}
    data = {"path": str(conf.path), "added": done.added, "updated": done.updated, "unchanged": done.unchanged,
            "removed": done.removed, "limits": flow.get("limits", []), "retention": flow.get("retention")}  # fmt: skip

    def human() -> None:
        parts = [f"{len(v)} {k}" + (f" ({', '.join(v)})" if v and k != "unchanged" else "")
                 for k, v in data.items() if k in ("added", "updated", "unchanged", "removed")]  # fmt: skip
        print(f"{conf.path}: schedules " + ", ".join(parts))
        if data["limits"]:
            print(f"{conf.path}: limits of {', '.join(data['limits'])}")
        if data["retention"] is not None:
            kept = ", ".join(f"{k} {'forever' if v is None else f'{v:g}s'}" for k, v in data["retention"].items())
            print(f"{conf.path}: retention {kept}")

    common.output(st, data, human)


@config_app.command("show")
def show(ctx: typer.Context) -> None:
    """Print the resolved config (as TOML, or JSON with --json), database override included."""
    import tomli_w

    from djobs import config as cfg

    st = common.state(ctx)
    conf = st.config() or cfg.Config()
    data = conf.to_dict()
    data["djobs"]["database"] = st.database_url()
    data["djobs"]["config_file"] = str(conf.path) if conf.path else None
    if st.json:
        common.print_json(data)
        return
    if data["djobs"]["config_file"] is None:
        data["djobs"].pop("config_file")
        print("# no config file found; these are the defaults")
    print(tomli_w.dumps(common.to_jsonable(data)), end="")


def register(app: typer.Typer) -> None:
    app.command()(init)
    app.add_typer(config_app)
