"""Handlers: how a Python callable becomes a job type.

Accepted shapes are `fn(ctx, args)`, `fn(args)` and `fn()`, each plain or `async def`. The args parameter's
annotation (a dataclass, TypedDict, dict, list or scalar) is the type JSON args are decoded into.

    @djobs.job("cleanup", retries=0)      # module level: every Queue registers these
    def cleanup(args: dict) -> int: ...
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from djobs import codec, validate
from djobs.retry import Backoff, to_seconds

DEFAULT_RETRIES = 3


@dataclass(frozen=True)
class JobOptions:
    """Defaults a handler gives the jobs of its type; enqueue options override them."""

    queue: str = "default"
    retries: int = DEFAULT_RETRIES
    priority: int = 0
    timeout: float | None = None
    backoff: Backoff | None = None

    @classmethod
    def make(
        cls,
        name: str,
        queue: str = "default",
        retries: int = DEFAULT_RETRIES,
        priority: int = 0,
        timeout: timedelta | float | None = None,
        backoff: Backoff | None = None,
    ) -> JobOptions:
        """Checked options (ValueError/TypeError at registration, not at the first enqueue)."""
        validate.name("job type", name)
        validate.name("queue name", queue)
        validate.int32("retries", retries, minimum=0)
        validate.int32("priority", priority)
        seconds = None if timeout is None else validate.seconds("timeout", to_seconds(timeout))
        if seconds is not None and seconds <= 0:
            raise ValueError(f"timeout must be positive, got {seconds}")
        if backoff is not None and not isinstance(backoff, Backoff):
            raise TypeError(f"backoff must be a djobs.Backoff, got {type(backoff).__name__}")
        return cls(queue, retries, priority, seconds, backoff)


@dataclass
class Handler:
    name: str
    fn: Callable[..., Any]
    options: JobOptions = field(default_factory=JobOptions)
    wants_ctx: bool = False
    takes_args: bool = True
    args_type: Any = Any
    is_async: bool = False

    @classmethod
    def build(cls, name: str, fn: Callable[..., Any], options: JobOptions) -> Handler:
        if not callable(fn):
            raise TypeError(f"handler for {name!r} is not callable: {fn!r}")
        sig = inspect.signature(fn)
        params = [
            p
            for p in sig.parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty
        ]
        if len(params) > 2:
            raise TypeError(f"handler {name!r} must take (ctx, args), (args) or nothing; it takes {len(params)}")
        try:
            hints = typing.get_type_hints(fn)
        except Exception:  # unresolvable forward references: fall back to no decoding
            hints = {}
        args_type: Any = Any
        if params:
            args_type = hints.get(params[-1].name, Any)
        target = fn
        is_async = inspect.iscoroutinefunction(target) or inspect.iscoroutinefunction(
            getattr(target, "__call__", None)  # noqa: B004 - callable objects with async __call__
        )
        return cls(
            name=name,
            fn=fn,
            options=options,
            wants_ctx=len(params) == 2,
            takes_args=len(params) >= 1,
            args_type=args_type,
            is_async=is_async,
        )

    def decode(self, value: Any) -> Any:
        """JSON value -> the annotated type; TypeError when it does not fit."""
        return codec.decode_as(value, self.args_type)

    def check_args(self, args: Any) -> str:
        """Encode args to JSON and check they decode into the handler's type; returns the JSON text."""
        text = encode_args(args)
        self.check_encoded(args, text)
        return text

    def check_encoded(self, args: Any, text: str) -> None:
        """Check args (and `text`, their JSON) decode into the handler's type: TypeError if not."""
        tp = self.args_type
        if tp is Any or (tp in (dict, list) and type(args) is tp):
            return  # nothing more to check: skip the decode (enqueue's hot path)
        self.decode(codec.loads(text))


_module_jobs: dict[str, Handler] = {}


def job(
    name: str,
    *,
    queue: str = "default",
    retries: int = DEFAULT_RETRIES,
    priority: int = 0,
    timeout: timedelta | float | None = None,
    backoff: Backoff | None = None,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register a handler at module level; every `Queue` (made by the CLI or not) knows it."""
    options = JobOptions.make(name, queue, retries, priority, timeout, backoff)

    def deco(fn: Callable[..., Any]) -> Callable[..., Any]:
        _module_jobs[name] = Handler.build(name, fn, options)
        return fn

    return deco


def module_jobs() -> dict[str, Handler]:
    """The handlers registered with `@djobs.job` so far (no database needed)."""
    return dict(_module_jobs)


def encode_args(args: Any, what: str = "args") -> str:
    """Args (or any stored JSON value: results, checkpoints, event data) as JSON text: TypeError if JSON
    cannot hold them, ValueError if they nest deeper than any reader may have to decode (a value 900 deep
    stores fine and then breaks every reader that walks it)."""
    return encode_args_many([args], what)[0]


def encode_args_many(values: list[Any], what: str = "args") -> list[str]:
    """`encode_args` of each value of a batch, the encoder looked up once for all of them."""
    try:
        texts = codec.dumps_many(values)
    except RecursionError:
        raise ValueError(f"{what} must nest at most {validate.MAX_DEPTH} deep") from None
    validate.json_depths(what, texts)
    return texts
