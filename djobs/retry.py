"""Backoff arithmetic: job retries (1 s, 2 s, 4 s … capped at 1 min, ±10 % jitter) and the retry policy for
storage operations (`RetryConfig`), which keeps a worker alive through a database blip or restart."""

from __future__ import annotations

import logging
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


def job_backoff(attempt: int) -> float:
    """Delay before the retry that follows failed attempt number `attempt` (1-based)."""
    base = min(JOB_BACKOFF_CAP, JOB_BACKOFF_BASE * (2 ** max(0, attempt - 1)))
    return base * (1 + random.uniform(-JOB_BACKOFF_JITTER, JOB_BACKOFF_JITTER))


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
