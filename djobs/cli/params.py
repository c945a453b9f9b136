"""Parameter conversion for the `djobs` command line without pydantic.

Typer (since 0.28) converts every option value through a pydantic `TypeAdapter`; importing pydantic costs
about 50 ms, a third of the budget of a `djobs enqueue` run from cron or a shell loop, and of every Tab
press. djobs's options use only `str`, `int`, `float`, `bool`, enums and lists of those, so `install` gives
each such parameter a converter of its own before parsing; anything else keeps Typer's.

The converters mirror Typer's results (a test compares them on every option of the app) and are stricter
in one place: floats must be finite (`--timeout nan` is a usage error, not a wait that never ends).
"""

from __future__ import annotations

import enum
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, get_args, get_origin

from typer._click.exceptions import BadParameter

try:  # Typer's runtime-conversion hook (0.28+); without it Typer converts as it always did
    from typer._coercion import RuntimeParam
except ImportError:  # pragma: no cover - other Typer versions
    RuntimeParam = None  # type: ignore[assignment,misc]

_WHOLE = re.compile(r"([+-]?\d+)\.0*")
_TRUE = frozenset({"1", "true", "t", "yes", "y", "on"})
_FALSE = frozenset({"0", "false", "f", "no", "n", "off", ""})


def _to_int(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError
    if isinstance(value, int):
        return value
    text = str(value).strip()
    if not text or not text.isascii() or len(text) > 4300:  # Python's own limit on digits in int()
        raise ValueError
    whole = _WHOLE.fullmatch(text)  # "3.0" is 3, as Typer reads it
    return int(whole.group(1) if whole else text, 10)


def _to_float(value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError
    text = "" if isinstance(value, int | float) else str(value).strip()
    if text and not text.isascii():
        raise ValueError
    number = float(value) if isinstance(value, int | float) else float(text)
    if not math.isfinite(number):
        raise ValueError
    return number


def _to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError


def _converter(annotation: Any) -> tuple[Callable[[Any], Any], str] | None:
    """(convert, what) for a leaf annotation djobs uses, or None to leave it to Typer."""
    if annotation is str:
        return str, "string"
    if annotation is int:
        return _to_int, "integer"
    if annotation is float:
        return _to_float, "finite number"
    if annotation is bool:
        return _to_bool, "boolean"
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        members = {str(m.value): m for m in annotation}

        def to_member(value: Any) -> Any:
            if isinstance(value, annotation):
                return value
            return members[str(value)]

        return to_member, "one of " + ", ".join(members)
    return None


if RuntimeParam is not None:

    @dataclass(frozen=True)
    class PlainParam(RuntimeParam):
        """Converts one value (or each of a repeated option's values), then checks min/max."""

        convert: Callable[[Any], Any]
        what: str
        many: bool

        def _coerce_value(self, value: Any, param: Any, ctx: Any) -> Any:
            if self.many:
                return [self._one(v, param, ctx) for v in value]
            return self._one(value, param, ctx)

        def _one(self, value: Any, param: Any, ctx: Any) -> Any:
            try:
                out = self.convert(value)
            except (ValueError, KeyError, TypeError, OverflowError):
                raise BadParameter(f"{value!r} is not a valid {self.what}.", ctx=ctx, param=param) from None
            low, high = self.parameter_info.min, self.parameter_info.max
            if (low is not None and out < low) or (high is not None and out > high):
                if low is not None and high is not None:
                    span = f"from {low} to {high}"
                else:
                    span = f"at least {low}" if low is not None else f"at most {high}"
                raise BadParameter(f"{out} is out of range (must be {span}).", ctx=ctx, param=param)
            return out


def plain_param(parameter: Any) -> Any | None:
    """The converter for one Typer parameter, or None when Typer's own should stay."""
    if RuntimeParam is None:
        return None
    descriptor = getattr(parameter, "type_descriptor", None)
    if descriptor is None or getattr(descriptor, "file_annotation", None) is not None:
        return None
    info = descriptor.parameter_info
    if getattr(info, "parser", None) is not None or getattr(info, "click_type", None) is not None:
        return None
    annotation, many = descriptor.annotation, False
    if get_origin(annotation) is list:
        (annotation,) = get_args(annotation)
        many = True
    found = _converter(annotation)
    if found is None:
        return None
    convert, what = found
    return PlainParam(parameter_info=info, annotation=descriptor.annotation, convert=convert, what=what, many=many)


def _install_one(parameter: Any) -> None:
    if getattr(parameter, "_runtime_param", "absent") is None:
        fast = plain_param(parameter)
        if fast is not None:
            parameter._runtime_param = fast


def install(command: Any) -> None:
    """Give every parameter of `command` and its subcommands a plain converter where one fits.

    `--help` is made per context when parsing starts, so each command's `get_help_option` is wrapped to
    convert it too.
    """
    if getattr(command, "_djobs_params", False):
        return
    command._djobs_params = True
    for parameter in getattr(command, "params", ()):
        _install_one(parameter)
    made = getattr(command, "get_help_option", None)
    if made is not None:

        def get_help_option(ctx: Any, made: Callable[[Any], Any] = made) -> Any:
            option = made(ctx)
            if option is not None:
                _install_one(option)
            return option

        command.get_help_option = get_help_option
    for sub in getattr(command, "commands", {}).values():
        install(sub)
