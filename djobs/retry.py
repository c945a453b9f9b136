"""Backoff arithmetic: job retries (1 s, 2 s, 4 s … capped at 1 min, ±10 % jitter) and the retry policy for
storage operations (`RetryConfig`), which keeps a worker alive through a database blip or restart."""

from __future__ import annotations

import logging
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import TypeVar

T = TypeVar("T")
log = logging.getLogger("djobs.retry")

JOB_BACKOFF_BASE = 1.0
JOB_BACKOFF_CAP = 60.0
JOB_BACKOFF_JITTER = 0.1


def to_seconds(value: timedelta | float | int | None) -> float:
    """Every duration parameter takes a timedelta or seconds."""
    if value is None:
        return 0.0
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"expected a timedelta or seconds, got {value!r}")
    return float(value)


@dataclass(frozen=True)
class Backoff:
    """How long a job waits before each retry: `initial` after the first failed attempt, multiplied by
    `multiplier` after each further one, at most `maximum`, spread by ±`jitter` (a fraction) so a burst of
    failures does not retry in lockstep.

        @queue.handler("sync", retries=8, backoff=djobs.Backoff(initial=2, maximum=300, multiplier=3))
    """

    initial: float = JOB_BACKOFF_BASE
    maximum: float = JOB_BACKOFF_CAP
    multiplier: float = 2.0
    jitter: float = JOB_BACKOFF_JITTER

    def __post_init__(self) -> None:
        for name in ("initial", "maximum", "multiplier", "jitter"):
            value = getattr(self, name)
            if isinstance(value, timedelta):
                object.__setattr__(self, name, value.total_seconds())
            elif isinstance(value, bool) or not isinstance(value, int | float):
                raise TypeError(f"Backoff {name} must be a number of seconds, got {value!r}")
            else:
                object.__setattr__(self, name, float(value))
        if not all(math.isfinite(getattr(self, n)) for n in ("initial", "maximum", "multiplier", "jitter")):
            raise ValueError("Backoff values must be finite")
        if self.initial < 0 or self.maximum < 0:
            raise ValueError("Backoff initial and maximum must be >= 0")
        if self.maximum > MAX_DELAY:
            raise ValueError(f"Backoff maximum must be at most {MAX_DELAY:.0f} seconds")
        if self.multiplier < 1:
            raise ValueError("Backoff multiplier must be >= 1")
        if not 0 <= self.jitter <= 1:
            raise ValueError("Backoff jitter must be between 0 and 1")

    def delay(self, attempt: int) -> float:
        """Delay before the retry that follows failed attempt number `attempt` (1-based)."""
        exp = min(max(0, attempt - 1), 1024)
        try:
            base = min(self.maximum, self.initial * self.multiplier**exp)
        except OverflowError:
            base = self.maximum
        return max(0.0, base * (1 + random.uniform(-self.jitter, self.jitter)))

    def to_json(self) -> dict[str, float]:
        return {"initial": self.initial, "maximum": self.maximum, "multiplier": self.multiplier, "jitter": self.jitter}

    @classmethod
    def from_json(cls, data: dict[str, float]) -> Backoff:
        return cls(**{k: float(v) for k, v in data.items() if k in ("initial", "maximum", "multiplier", "jitter")})


#: The longest delay djobs accepts anywhere (a year): past it, a retry or a sleep is a mistake.
MAX_DELAY = 366 * 86400.0
DEFAULT_BACKOFF = Backoff()


def job_backoff(attempt: int, backoff: Backoff | None = None) -> float:
    """Delay before the retry that follows failed attempt number `attempt` (1-based)."""
    return (backoff or DEFAULT_BACKOFF).delay(attempt)


@dataclass(frozen=True)
class RetryConfig:
    """Retry policy for storage operations (not for jobs)."""

    max_attempts: int = 5
    initial_backoff: float = 0.1
    max_backoff: float = 5.0
    backoff_multiplier: float = 2.0
    jitter_fraction: float = 0.1

    @classmethod
    def default(cls) -> RetryConfig:
        return cls()

    @classmethod
    def disabled(cls) -> RetryConfig:
        return cls(max_attempts=1)

    def delay(self, attempt: int) -> float:
        """Pause after failed try number `attempt` (1-based)."""
        d = min(self.max_backoff, self.initial_backoff * self.backoff_multiplier ** max(0, attempt - 1))
        return max(0.0, d * (1 + random.uniform(-self.jitter_fraction, self.jitter_fraction)))

    def run(
        self,
        fn: Callable[[], T],
        retry_on: tuple[type[BaseException], ...],
        on_error: Callable[[BaseException, int], None] | None = None,
        sleep: Callable[[float], object] = time.sleep,
    ) -> T:
        """Call fn, retrying `retry_on` errors with backoff; the last error propagates."""
        attempt = 0
        while True:
            attempt += 1
            try:
                return fn()
            except retry_on as exc:
                if on_error is not None:
                    on_error(exc, attempt)
                if attempt >= max(1, self.max_attempts):
                    raise
                sleep(self.delay(attempt))
