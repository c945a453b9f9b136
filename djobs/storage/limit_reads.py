"""What a queue's limits look like now, for `djobs why`, the dashboard and `held_back` counts: read-only, and
kept apart from the claim that enforces the limits (`limits.py`), whose statements and arithmetic they share."""

from __future__ import annotations

from typing import Any

from djobs.jobs import Limits
from djobs.storage.base import StorageBase
from djobs.storage.dialect import IS_CLAIMABLE
from djobs.storage.errors import operation
from djobs.storage.limits import _KEY_RUNNING, _QUEUE, _RUNNING, MAX_KEYS, _limits, _refill


class LimitReadOps(StorageBase):
    @operation(read=True)
    def limit_state(self, queue: str, key: str | None = None) -> dict[str, Any]:
        """What the queue's limits (and the key's) look like now: caps, running counts, tokens, due jobs."""
        row = self._ex(_QUEUE, (queue,)).fetchone()
        if row is None or not row[1]:
            return {}
        _, _, running_cap, rate_n, rate_per, key_cap, key_n, key_per, tokens, refilled_at, now = row
        now = float(now)
        out: dict[str, Any] = {"limits": _limits((running_cap, rate_n, rate_per, key_cap, key_n, key_per))}
        out["running"] = int(self._ex(_RUNNING, (queue,)).fetchone()[0])
        out["due"] = int(
            self._ex(
                f"SELECT COUNT(*) FROM djobs_jobs WHERE queue = ? AND {IS_CLAIMABLE} AND run_at <= {{now}}",
                (queue,),
            ).fetchone()[0]
        )
        if rate_n:
            out["tokens"] = _refill(tokens, refilled_at, float(rate_n), float(rate_per), now)
        if key is not None:
            out["key_running"] = int(
                self._ex(
                    "SELECT COUNT(*) FROM djobs_jobs WHERE queue = ? AND status = 'running' AND job_key = ?", (queue, key)
                ).fetchone()[0]
            )
            out["key_due"] = int(
                self._ex(
                    f"SELECT COUNT(*) FROM djobs_jobs WHERE queue = ? AND job_key = ? AND {IS_CLAIMABLE} "
                    "AND run_at <= {now}",
                    (queue, key),
                ).fetchone()[0]
            )
            if key_n:
                b = self._ex(
                    "SELECT tokens, refilled_at FROM djobs_key_buckets WHERE queue = ? AND job_key = ?", (queue, key)
                ).fetchone()
                out["key_tokens"] = _refill(b[0] if b else None, b[1] if b else None, float(key_n), float(key_per), now)
        return out

    @operation(read=True)
    def held_back(self, queue: str) -> dict[str, int]:
        """How many due jobs each limit of the queue holds back now (0 for a limit that holds none)."""
        state = self.limit_state(queue)
        if not state:
            return {}
        lim: Limits = state["limits"]
        due = state["due"]
        out = {"running": 0, "rate": 0, "key_running": 0, "key_rate": 0}
        if lim.running is not None and state["running"] >= lim.running:
            out["running"] = due
        elif lim.rate is not None and state.get("tokens", 1) < 1:
            out["rate"] = due
        if lim.key_running is not None or lim.key_rate is not None:
            rows = self._ex(
                f"SELECT job_key, COUNT(*) FROM djobs_jobs WHERE queue = ? AND {IS_CLAIMABLE} AND run_at <= {{now}} "
                f"AND job_key IS NOT NULL GROUP BY job_key LIMIT {MAX_KEYS}",
                (queue,),
            ).fetchall()
            running = dict(self._ex(_KEY_RUNNING, (queue,)).fetchall())
            buckets = {}
            if lim.key_rate is not None:
                now = float(self._ex("SELECT {now}").fetchone()[0])
                for k, tokens, at in self._ex(
                    "SELECT job_key, tokens, refilled_at FROM djobs_key_buckets WHERE queue = ?", (queue,)
                ).fetchall():
                    buckets[k] = _refill(tokens, at, lim.key_rate.n, lim.key_rate.per, now)
            for key, n_due in rows:
                if lim.key_running is not None and int(running.get(key, 0)) >= lim.key_running:
                    out["key_running"] += int(n_due)
                elif buckets.get(key, 1.0) < 1:
                    out["key_rate"] += int(n_due)
        return out
