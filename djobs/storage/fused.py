"""PostgreSQL: a dispatcher's usual round as one statement.

Most rounds complete the jobs that finished and claim as many (with a prefetch behind). On PostgreSQL
each statement costs a network round trip, and a transaction two more (BEGIN, COMMIT), so such a round is
sent as one statement of data-modifying CTEs instead: it commits on its own, all or nothing, and costs one
round trip. Rounds with other outcomes (failures, retries, give-backs), several claims, or no outcomes at
all (an idle poll, whose empty event insert would still wake every follower) take the transaction in
`claims.py`.

A queue with queue-level limits (`running`, `rate`) is claimed in the same statement. The limits must be
read after the queue's row is locked, and a statement reads everything as of its start, before it waited
for the lock: so every claim under a queue's limits also stamps the queue's row (`refilled_at`), and the
statement compares the row it locked with the row as of its start. Equal, nobody claimed there since the
statement began, and its running count holds; different, it claims nothing there and the round's claim
runs again in a transaction of its own, which locks first and reads after. Per-key limits always take
that transaction.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from djobs.storage import records
from djobs.storage.base import Row
from djobs.storage.claims import _PICK, _TAKE, ClaimOps
from djobs.storage.dialect import COL, IS_CLAIMABLE

if TYPE_CHECKING:
    from djobs.outcomes import ClaimRequest, Outcome, RoundResult

_D = "DOUBLE PRECISION"
#: How long a queue's kind of limits (queue-level or per-key) is trusted before a round looks again.
KIND_TTL = 10.0
# The claim under queue-level limits: `l` the queue's row, locked (as it is now, after any wait), `k` what it
# allows, counted as of the statement's start (less the jobs this statement completes, still running then)
# and trusted only when the locked row is the row as of the start (`fresh`); `t` spends the bucket and
# stamps the row. The pick is the limited claim's (it does not skip limited queues).
_LIMITED = (
    "l AS MATERIALIZED (SELECT paused, limited, running_cap, rate_n, rate_per, tokens, refilled_at, "
    "key_running_cap, key_rate_n FROM djobs_queues WHERE name = ? FOR UPDATE), "
    "k AS MATERIALIZED (SELECT l.*, q.refilled_at IS NOT DISTINCT FROM l.refilled_at AS fresh, "
    "(l.key_running_cap IS NOT NULL OR l.key_rate_n IS NOT NULL) AS keyed, "
    "CASE WHEN l.rate_n IS NULL THEN NULL WHEN l.tokens IS NULL OR l.refilled_at IS NULL THEN l.rate_n "
    "ELSE LEAST(l.rate_n, l.tokens + GREATEST(0, {now} - l.refilled_at) * l.rate_n / l.rate_per) END AS bucket, "
    "{now} AS now FROM l LEFT JOIN djobs_queues q ON q.name = ?), "
    "kn AS (SELECT CASE WHEN NOT fresh OR keyed OR paused = 1 THEN 0 WHEN limited = 0 THEN CAST(? AS BIGINT) "
    "ELSE GREATEST(0, LEAST(CAST(? AS BIGINT), COALESCE(running_cap - (SELECT COUNT(*) FROM djobs_jobs "
    "WHERE queue = ? AND status = 'running') + (SELECT COUNT(*) FROM d WHERE d.queue = ?), CAST(? AS BIGINT)), "
    "COALESCE(CAST(floor(bucket + 1e-9) AS BIGINT), CAST(? AS BIGINT)))) END AS n FROM k), "
    f"c AS MATERIALIZED (SELECT id FROM djobs_jobs WHERE queue = ? AND {IS_CLAIMABLE} AND run_at <= {{now}} "
    "AND type IN ({types}) AND NOT EXISTS (SELECT 1 FROM djobs_workers w WHERE w.id = ? AND w.paused = 1) "
    "ORDER BY priority DESC, run_at, id LIMIT (SELECT COALESCE(MAX(n), CAST(? AS BIGINT)) FROM kn) "
    "FOR UPDATE SKIP LOCKED), "
    "u AS (UPDATE djobs_jobs j SET {take} FROM c WHERE j.id = c.id RETURNING {jcols}, CAST(NULL AS BIGINT) AS n), "
    "t AS (UPDATE djobs_queues SET refilled_at = k.now, tokens = CASE WHEN k.bucket IS NULL THEN djobs_queues.tokens "
    "ELSE k.bucket - (SELECT COUNT(*) FROM u) END FROM k WHERE djobs_queues.name = ? AND k.fresh AND NOT k.keyed "
    "AND k.limited = 1 AND k.paused = 0)"
)
# The round's state under limits, one row after the jobs: whether the claim could be trusted, and the bucket
# (when the rate allows the next job); with a wake-up for workers waiting on the limit when places came free.
_STATE = (
    "SELECT {nulls}, NULL, NULL, json_build_array(k.fresh AND NOT k.keyed, k.keyed, k.bucket, k.rate_n, "
    "k.rate_per, k.now, (SELECT COUNT(*) FROM (SELECT pg_notify('djobs_wake', current_schema()) "
    "WHERE CAST(? AS BOOLEAN)) z))::text FROM k"
)


class FusedOps(ClaimOps):
    def _fused_round(
        self, worker_id: str, outcomes: list[Outcome], claims: list[ClaimRequest], events: Sequence[Row],
        since: dict[tuple[str, int], str], started_events: bool, turn: int, limited_done: bool,
    ) -> RoundResult | None:  # fmt: skip
        from djobs.outcomes import Claim, OutcomeKind, RoundResult

        if not outcomes or any(o.kind is not OutcomeKind.COMPLETE for o in outcomes):
            return None
        limited = len(claims) == 1 and claims[0].limited
        if limited:
            kind, seen = self._limit_kinds.get(claims[0].queue, ("", 0.0))
            if kind == "keys" and time.monotonic() - seen < KIND_TTL:
                return None
        elif limited_done or not (len(claims) < 2 or (len(claims) == 2 and self._pairs(claims, 0))):
            return None
        completed, got, state = self._fused(worker_id, outcomes, claims, events, since, started_events, limited_done)
        won = [Claim(records.job(r), r[COL["fanout_id"]], k, r[COL["trace"]]) for r, k in got]
        owned = [o.job_id in completed for o in outcomes]
        if state is None:
            return RoundResult(owned, won, [])
        trusted, keyed, bucket, rate_n, rate_per, now, _ = state
        queue = claims[0].queue
        if keyed:
            self._limit_kinds[queue] = ("keys", time.monotonic())
        if trusted:
            retry = None
            if bucket is not None and math.floor(bucket + 1e-9) < 1:
                retry = now + (1 - bucket) * rate_per / rate_n
            return RoundResult(owned, won, [], None, retry)
        # Someone claimed there since the statement began (or the queue has per-key limits): the claim again,
        # in a transaction that locks before it reads.
        again = self._cycle_tx(worker_id, [], claims, (), {}, started_events, False, turn, False)
        return RoundResult(owned, won + again.claims, [], None, again.limit_retry)

    def _fused(
        self, worker_id: str, outcomes: list[Outcome], claims: list[ClaimRequest], events: Sequence[Row],
        since: dict[tuple[str, int], str], started_events: bool, limited_done: bool,
    ) -> tuple[set[str], list[tuple[Row, int]], list[Any] | None]:  # fmt: skip
        """The round as one statement: the ids of the completions written, the claimed rows with the index of
        the request each answers, and (a limited claim) the state row's values."""
        done = [(o.job_id, o.result_json, str(o.attempt), since.pop((o.job_id, o.attempt), None)) for o in outcomes]
        params: list[Any] = [*self._batch_params(done), worker_id]
        params += [*self._batch_params([(i, str(a), e) for (i, a), e in since.items()]), worker_id]
        limited = len(claims) == 1 and claims[0].limited
        if limited:
            req = claims[0]
            params += [req.queue, req.queue, req.limit, req.limit, req.queue, req.queue, req.limit, req.limit]
            params += [req.queue, *req.types, worker_id, req.limit, worker_id, int(req.held), req.queue]
        elif claims:
            req = claims[0]
            total = req.limit + (claims[1].limit if len(claims) == 2 else 0)
            params += [req.queue, *req.types, req.queue, worker_id, total, worker_id]
            params.append(int(req.held) if len(claims) == 1 else req.limit)
        ended = [(o.event[0], o.job_id, o.queue, worker_id, o.event[1]) for o in outcomes if o.event is not None]
        with_events = bool(events or ended or (claims and started_events))
        if with_events:
            params += [*self._batch_params(list(events)), *self._batch_params(ended)]
            if claims and started_events:
                params.append(worker_id)
        if limited:
            params.append(limited_done)
        sql = self._fused_sql(claims, with_events, started_events)
        with self._write_lock:
            got = self.db.execute_sql(sql, params).fetchall()
        j = len(COL)
        completed = {r[j + 1] for r in got if r[j + 1] is not None}
        state = next((json.loads(r[j + 2]) for r in got if r[j + 2] is not None), None)
        limit = claims[0].limit if claims else 0
        rows = [(r[:j], 0 if r[j] is None or r[j] <= limit else 1) for r in got if r[0] is not None]
        return completed, rows, state

    def _fused_sql(self, claims: list[ClaimRequest], with_events: bool, started_events: bool) -> str:
        kind = "limited" if len(claims) == 1 and claims[0].limited else str(len(claims))
        n_types = len(claims[0].types) if claims else 0
        name = f"fused:{kind}:{n_types}:{with_events}:{started_events}"
        sql = self._statements.get(name)
        if sql is not None:
            return sql
        parts = [f"d AS ({self._complete_sql()})", f"m AS ({self._mark_started_sql()})"]
        nulls = ", ".join(["NULL"] * len(COL))
        tail = [f"SELECT {nulls}, NULL, d.id, NULL FROM d"]
        if claims:
            types = self.dialect.marks(n_types)
            take = _TAKE.format(a="j.")
            pick = _PICK.replace("{types}", types)
            if kind == "limited":
                parts.append(_LIMITED.replace("{types}", types).replace("{take}", take))
                tail.append(_STATE.replace("{nulls}", nulls))
            elif kind == "1":
                parts.append(f"c AS MATERIALIZED ({pick} FOR UPDATE SKIP LOCKED)")
                parts.append(f"u AS (UPDATE djobs_jobs j SET {take} FROM c WHERE j.id = c.id "
                             "RETURNING {jcols}, CAST(NULL AS BIGINT) AS n)")  # fmt: skip
            else:  # a claim and its prefetch, as `_claim_pair`
                pick = pick.replace("SELECT id FROM", "SELECT id, priority, run_at FROM", 1)
                take = take.replace("held = ?", "held = CASE WHEN o.n > ? THEN 1 ELSE 0 END")
                parts.append(f"c AS MATERIALIZED ({pick} FOR UPDATE SKIP LOCKED)")
                parts.append("o AS (SELECT id, row_number() OVER (ORDER BY priority DESC, run_at, id) AS n FROM c)")
                parts.append(f"u AS (UPDATE djobs_jobs j SET {take} FROM o WHERE j.id = o.id RETURNING {{jcols}}, o.n)")
            tail.insert(0, "SELECT u.*, CAST(NULL AS TEXT), CAST(NULL AS TEXT) FROM u")
        if with_events:
            src = self.dialect.batch_source(("k", "j", "q", "w", "d"))
            ins = (
                "INSERT INTO djobs_events (ts, kind, job_id, queue, worker_id, data) "
                f"SELECT {{now}}, v.k, v.j, v.q, v.w, v.d FROM {src} UNION ALL "
                f"SELECT {{now}}, v.k, v.j, v.q, v.w, v.d FROM {src} WHERE v.j IN (SELECT id FROM d)"
            )
            if claims and started_events:
                ins += " UNION ALL SELECT {now}, 'job_started', u.id, u.queue, ?, '{\"attempt\":' || u.attempt || '}' FROM u"
            parts.append(f"e AS ({ins})")
        sql = self._statements[name] = self.dialect.render(f"WITH {', '.join(parts)} {' UNION ALL '.join(tail)}")
        return sql
