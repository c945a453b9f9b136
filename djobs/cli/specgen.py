"""Writes `djobs/cli/spec.py`: the Typer app's command tree as plain data, for the typer-free fast path.

The fast path (`djobs/cli/fast.py`) parses the commands it runs and answers Tab presses without importing typer,
so it needs the commands, options, arguments and completers of the app without building it. They are
derived from the app here (never kept by hand) and committed; `scripts/gen-docs` rewrites the file and
`tests/test_cli_docs.py` fails when it disagrees with the app.
"""

from __future__ import annotations

import enum
from typing import Any

SPEC_FILE = "djobs/cli/spec.py"

_HEADER = '''"""The `djobs` command tree as plain data (generated from the Typer app by djobs/cli/specgen.py: run
scripts/gen-docs, do not edit). Used by djobs/cli/fast.py, which must not import typer."""

from typing import Any

# fmt: off
'''


def _completer(param: Any) -> str | None:
    """How Tab completes the parameter's value: a provider of djobs/cli/complete.py (by its kind),
    "choice", "none" (nothing), or None when only Typer knows (the fast path then defers to it)."""
    custom = getattr(param, "_custom_shell_complete", None)
    if custom is not None:
        kind = _djobs_kind(custom)
        return f"provider:{kind}" if kind else None
    desc = getattr(param, "type_descriptor", None)
    if desc is not None and getattr(desc, "is_file", False):
        return None
    if desc is not None and getattr(desc, "is_choice", False):
        return "choice" if getattr(desc, "case_sensitive", True) else None
    return "none"


def _djobs_kind(fn: Any, depth: int = 3) -> str | None:
    """The `djobs_kind` of the completer of djobs/cli/complete.py that Typer wrapped (in closures) as `fn`."""
    kind = getattr(fn, "djobs_kind", None)
    if kind is not None or depth == 0:
        return kind
    for inner in [getattr(fn, "__wrapped__", None), *(c.cell_contents for c in getattr(fn, "__closure__", None) or ())]:
        if callable(inner):
            kind = _djobs_kind(inner, depth - 1)
            if kind is not None:
                return kind
    return None


def _value_type(param: Any) -> dict[str, Any]:
    """What the fast enqueue parser needs to convert a value exactly as Typer does (or defer to it)."""
    desc = param.type_descriptor
    annotation = desc.annotation
    args = getattr(annotation, "__args__", None)
    if getattr(annotation, "__origin__", None) is list and args:
        annotation = args[0]
    info = desc.parameter_info
    out: dict[str, Any] = {"min": getattr(info, "min", None), "max": getattr(info, "max", None)}
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        out["type"], out["choices"] = "choice", [str(m.value) for m in annotation]
    else:
        out["type"] = getattr(annotation, "__name__", repr(annotation))
    return out


def _default(value: Any) -> Any:
    if isinstance(value, enum.Enum):
        return str(value.value)
    return list(value) if isinstance(value, tuple) else value


def _command(cmd: Any, ctx: Any) -> dict[str, Any]:
    import typer

    options: list[dict[str, Any]] = []
    arguments: list[dict[str, Any]] = []
    for param in cmd.get_params(ctx):
        entry: dict[str, Any] = {"dest": param.name, "complete": _completer(param)}
        if isinstance(param, typer.core.TyperArgument):
            entry["nargs"] = param.nargs
            arguments.append(entry)
            continue
        entry.update(
            names=list(param.opts), secondary=list(param.secondary_opts), help=param.help,
            takes_value=not (param.is_flag or param.count), nargs=param.nargs, multiple=param.multiple,
            hidden=param.hidden, envvar=param.envvar, eager=param.is_eager, required=param.required,
        )  # fmt: skip
        if param.name != "help" and getattr(param, "type_descriptor", None) is not None:
            entry.update(_value_type(param), default=_default(param.default))
        options.append(entry)
    out: dict[str, Any] = {"options": options, "arguments": arguments}
    if isinstance(cmd, typer.core.TyperGroup):
        subs = []
        for name in cmd.list_commands(ctx):
            sub = cmd.get_command(ctx, name)
            if sub is not None:
                subs.append({"name": name, "help": sub.get_short_help_str(), "hidden": sub.hidden})
        out["commands"] = subs
    return out


def spec() -> dict[str, dict[str, Any]]:
    """Every command path ("" for the root, "pause job", ...) with its options, arguments and subcommands."""
    import typer

    from djobs.cli.app import app

    root = typer.main.get_command(app)
    found: dict[str, dict[str, Any]] = {}

    def walk(cmd: Any, ctx: Any, path: str) -> None:
        found[path] = _command(cmd, ctx)
        for name in getattr(cmd, "list_commands", lambda _ctx: [])(ctx):
            sub = cmd.get_command(ctx, name)
            walk(sub, typer.Context(sub, info_name=name, parent=ctx), f"{path} {name}".strip())

    walk(root, typer.Context(root, info_name="djobs"), "")
    return found


def spec_module() -> str:
    """The text of djobs/cli/spec.py."""
    lines = [_HEADER + "COMMANDS: dict[str, dict[str, Any]] = {"]
    for path, command in spec().items():
        lines.append(f"    {path!r}: {{")
        for part, entries in command.items():
            lines.append(f"        {part!r}: [")
            lines += [f"            {entry!r}," for entry in entries]
            lines.append("        ],")
        lines.append("    },")
    return "\n".join([*lines, "}", ""])
