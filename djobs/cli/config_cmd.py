"""`djobs init` and `djobs config check` / `config show`."""

from __future__ import annotations

import os
import sys
import tomllib
from pathlib import Path

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
    force: bool = typer.Option(False, "--force", envvar="DJOBS_INIT_FORCE", help="Overwrite an existing file."),
) -> None:
    """Write a starter djobs.toml.

    Writes to --config PATH if given, else ./djobs.toml; never overwrites without --force.
    """
    import tomli_w

    from djobs import config as cfg

    st = common.state(ctx)
    path = Path(st.config_path or cfg.CONFIG_NAME)
    if path.exists() and not force:
        raise common.OperationFailed(f"{path} already exists (use --force to overwrite)")
    url = database or st.database or common.DEFAULT_DATABASE
    text = _HEADER + tomli_w.dumps(cfg.starter(url))
    _, problems = cfg.validate(tomllib.loads(text), path)
    assert not problems, problems  # the starter must itself be valid
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise common.OperationFailed(f"cannot write {path}: {exc.strerror or exc}") from None
    where = database_location(cfg.anchor_sqlite_url(url, path.parent))
    common.output(
        st, {"path": str(path), "database": url, "database_location": where},
        lambda: print(f"wrote {path}; the database is {where}"),
    )  # fmt: skip


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
    """Write the config's schedules to the database; delete the ones removed from it.

    Workers do this when they start. Run it after editing [schedules.*] to change schedules without
    restarting workers; schedules made through the library are left alone.
    """
    from djobs import config as cfg

    st = common.state(ctx)
    conf = st.config()
    if conf is None:
        raise cfg.ConfigProblems(["no config file (looked for ./djobs.toml and $XDG_CONFIG_HOME/djobs/djobs.toml)"])
    done = common.apply_schedules(st, common.open_queue(st))
    data = {"path": str(conf.path), "added": done.added, "updated": done.updated, "unchanged": done.unchanged,
            "removed": done.removed}  # fmt: skip

    def human() -> None:
        parts = [f"{len(v)} {k}" + (f" ({', '.join(v)})" if v and k != "unchanged" else "")
                 for k, v in data.items() if k != "path"]  # fmt: skip
        print(f"{conf.path}: schedules " + ", ".join(parts))

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
