"""`djobs completion show SHELL` and `djobs completion install [SHELL]`."""

from __future__ import annotations

import typer

from djobs.cli import common

completion_app = typer.Typer(
    name="completion", help="Print or install shell completion (bash, zsh, fish).", no_args_is_help=True,
    rich_markup_mode=None,
)  # fmt: skip


def _shell_values(ctx: typer.Context, args: list[str], incomplete: str) -> list[str]:
    from djobs.cli.complete import SHELLS

    return [s for s in SHELLS if s.startswith(incomplete)]


@completion_app.command("show")
def show(
    shell: str = typer.Argument(..., metavar="SHELL", help="bash, zsh or fish.", autocompletion=_shell_values),
) -> None:
    """Print the completion script for SHELL.

    For example: djobs completion show bash > ~/.local/share/bash-completion/completions/djobs
    """
    from djobs.cli.complete import script

    print(script(shell), end="")


@completion_app.command("install")
def install(
    ctx: typer.Context,
    shell: str | None = typer.Argument(
        None, metavar="[SHELL]", help="bash, zsh or fish [default: from $SHELL].", autocompletion=_shell_values
    ),
) -> None:
    """Write the completion script where SHELL looks for it, and say how to enable it.

    bash: ~/.local/share/bash-completion/completions/djobs (loaded by bash-completion); zsh: ~/.zfunc/_djobs
    (add ~/.zfunc to fpath); fish: ~/.config/fish/completions/djobs.fish. Completion offers commands and
    options, and from the database and the config: job types, queue names, recent job ids, worker ids and
    schedule names.
    """
    from djobs.cli import complete

    st = common.state(ctx)
    name = shell or complete.detect_shell()
    path = complete.install_path(name)
    text = complete.script(name)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise common.OperationFailed(f"cannot write {path}: {exc.strerror or exc}") from None
    hint = complete.how_to_enable(name, path)
    common.output(st, {"shell": name, "path": str(path), "enable": hint},
                  lambda: print(common.printable(f"wrote {path}"), common.printable(hint), sep="\n"))  # fmt: skip


def register(app: typer.Typer) -> None:
    app.add_typer(completion_app)
