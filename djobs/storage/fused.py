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

import dataclasses
import json
import math
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from djobs.storage import records
from djobs.storage.base import Row
from djobs.storage.claims import _TAKE, ClaimOps
from djobs.storage.dialect import BY_ID, COL, IS_CLAIMABLE

if TYPE_CHECKING:
    from djobs.outcomes import ClaimRequest, Outcome, RoundResult

#: How long a queue's kind of limits (queue-level or per-key) is trusted before a round looks again.
KIND_TTL = 10.0
# A claim under limits: `l` the queue's row, locked (as it is now, after any wait); `k` the row's values,
# trusted only when the locked row is the row as of the statement's start (`fresh`), and its refilled bucket;
# `kn` how many the queue-level limits allow, counted as of the statement's start (less the jobs this
# statement completes, still running then). `{other}` is the kind of queue the statement is not for
# (`keyed` or `NOT keyed`): on such a queue it claims nothing and says so.
_LOCK = (
    "l AS MATERIALIZED (SELECT paused, limited, running_cap, rate_n, rate_per, tokens, refilled_at, "
    "key_running_cap, key_rate_n, key_rate_per FROM djobs_queues WHERE name = ? FOR UPDATE), "
    "k AS MATERIALIZED (SELECT l.*, q.refilled_at IS NOT DISTINCT FROM l.refilled_at AS fresh, "
    "(l.key_running_cap IS NOT NULL OR l.key_rate_n IS NOT NULL) AS keyed, "
    "CASE WHEN l.rate_n IS NULL THEN NULL WHEN l.tokens IS NULL OR l.refilled_at IS NULL THEN l.rate_n "
    "ELSE LEAST(l.rate_n, l.tokens + GREATEST(0, {now} - l.refilled_at) * l.rate_n / l.rate_per) END AS bucket, "
    "{now} AS now FROM l LEFT JOIN djobs_queues q ON q.name = ?), "
    "kn AS (SELECT CASE WHEN NOT fresh OR {other} OR paused = 1 THEN 0 WHEN limited = 0 THEN CAST(? AS BIGINT) "
    "ELSE GREATEST(0, LEAST(CAST(? AS BIGINT), COALESCE(running_cap - (SELECT COUNT(*) FROM djobs_jobs "
    "WHERE queue = ? AND status = 'running') + (SELECT COUNT(*) FROM d WHERE d.queue = ?), CAST(? AS BIGINT)), "
    "COALESCE(CAST(floor(bucket + 1e-9) AS BIGINT), CAST(? AS BIGINT)))) END AS n FROM k), "
)
# The limited claim's pick (it does not skip limited queues); `{key}` the key's condition.
_LPICK = (
    f"SELECT id FROM djobs_jobs WHERE queue = ? AND {{key}} AND {IS_CLAIMABLE} AND run_at <= {{now}} "
    "AND type IN ({types}) AND NOT EXISTS (SELECT 1 FROM djobs_workers w WHERE w.id = ? AND w.paused = 1) "
    "ORDER BY priority DESC, run_at, id LIMIT {limit} FOR UPDATE SKIP LOCKED"
)
# `t` spends the queue's bucket and stamps its row, so that other statements see the claim (`fresh`).
_STAMP = (
    "t AS (UPDATE djobs_queues SET refilled_at = k.now, tokens = CASE WHEN k.bucket IS NULL THEN djobs_queues.tokens "
    "ELSE k.bucket - (SELECT COUNT(*) FROM u) END FROM k WHERE djobs_queues.name = ? AND k.fresh AND NOT {other} "
    "AND k.limited = 1 AND k.paused = 0)"
)
_QUEUE_LEVEL = (
    _LOCK + "c AS MATERIALIZED (" + _LPICK.replace("{key}", "TRUE").replace(
        "{limit}", "(SELECT COALESCE(MAX(n), CAST(? AS BIGINT)) FROM kn)"
    ) + "), u AS (UPDATE djobs_jobs j SET {take} WHERE " + BY_ID + " RETURNING {jcols}, CAST(NULL AS BIGINT) AS n), "
    + _STAMP
).replace("{other}", "keyed")
# Per-key limits over a window of keys (`o`, in the round's rotation; NULL: the jobs without a key): `r` each
# key's running count (less this statement's completions), `a` its refilled bucket (`t`, NULL without a key
# rate), `w` its allowance, `f` whether the hand-out is the one `limits._shares` would make over every due
# key (the window is all of them, or every key in it may take a place), `s` the places round robin (round
# `g.r` of every key before round `g.r + 1`), `sh` each key's share, `b` the keys' spent buckets.
_PER_KEY = (
    _LOCK + "o AS (SELECT k AS key, i FROM unnest(?::text[]) WITH ORDINALITY AS o(k, i)), "
    "r AS (SELECT x.job_key AS key, COUNT(*) - COALESCE(MAX(y.c), 0) AS c FROM djobs_jobs x LEFT JOIN "
    "(SELECT job_key, COUNT(*) AS c FROM d WHERE d.queue = ? GROUP BY job_key) y ON y.job_key = x.job_key "
    "WHERE x.queue = ? AND x.status = 'running' AND x.job_key IS NOT NULL GROUP BY x.job_key), "
    "a AS (SELECT o.key, o.i, COALESCE(r.c, 0) AS c, CASE WHEN k.key_rate_n IS NULL THEN NULL "
    "WHEN b.tokens IS NULL OR b.refilled_at IS NULL THEN k.key_rate_n ELSE LEAST(k.key_rate_n, b.tokens + "
    "GREATEST(0, k.now - b.refilled_at) * k.key_rate_n / k.key_rate_per) END AS t "
    "FROM o CROSS JOIN k LEFT JOIN r ON r.key = o.key LEFT JOIN LATERAL (SELECT tokens, refilled_at FROM "
    "djobs_key_buckets WHERE queue = ? AND job_key = o.key OFFSET 0) b ON TRUE), "  # one look-up a key, not a scan
    "w AS (SELECT a.key, a.i, a.t, CASE WHEN a.key IS NULL THEN kn.n ELSE LEAST(kn.n, "
    "COALESCE(k.key_running_cap - a.c, kn.n), COALESCE(CAST(floor(a.t + 1e-9) AS BIGINT), kn.n)) END AS allow "
    "FROM a CROSS JOIN k CROSS JOIN kn), "
    "f AS (SELECT CAST(? AS BOOLEAN) OR NOT EXISTS (SELECT 1 FROM w WHERE w.allow < 1) AS ok), "
    "s AS (SELECT w.key, w.i FROM w CROSS JOIN f CROSS JOIN generate_series(0, w.allow - 1) AS g(r) WHERE f.ok "
    "ORDER BY g.r, w.i LIMIT (SELECT COALESCE(MAX(n), 0) FROM kn)), "
    "sh AS (SELECT key, COUNT(*) AS m FROM s GROUP BY key), "
    "c AS MATERIALIZED (SELECT x.id FROM sh CROSS JOIN LATERAL ("
    + _LPICK.replace("{key}", "job_key = sh.key").replace("{limit}", "sh.m")
    + ") x WHERE sh.key IS NOT NULL UNION ALL SELECT id FROM ("
    + _LPICK.replace("{key}", "job_key IS NULL").replace("{limit}", "(SELECT COALESCE(MAX(m), 0) FROM sh WHERE key IS NULL)")
    + ") x), "
    "u AS (UPDATE djobs_jobs j SET {take} WHERE " + BY_ID + " "
    "RETURNING {jcols}, CAST(NULL AS BIGINT) AS n), "
    "b AS (INSERT INTO djobs_key_buckets (queue, job_key, tokens, refilled_at) SELECT ?, u.job_key, "
    "MIN(w.t) - COUNT(*), MIN(k.now) FROM u JOIN w ON w.key = u.job_key CROSS JOIN k WHERE w.t IS NOT NULL "
    "GROUP BY u.job_key ON CONFLICT (queue, job_key) DO UPDATE SET tokens = excluded.tokens, "
    "refilled_at = excluded.refilled_at), "
    + _STAMP
).replace("{other}", "NOT keyed")
# The round's state under limits, one row after the jobs: whether the claim could be trusted, the queue's
# bucket and the fullest key bucket under one token (when the rates let the next job start); with a wake-up
# for workers waiting on the limit when places came free.
_STATE = (
    "SELECT {nulls}, NULL, NULL, json_build_array(k.fresh AND {mine}{sure}, k.keyed, k.bucket, k.rate_n, "
    "k.rate_per, k.now, {fullest}, k.key_rate_n, k.key_rate_per, (SELECT COUNT(*) FROM (SELECT "
    "pg_notify('djobs_wake', current_schema()) WHERE CAST(? AS BOOLEAN)) z))::text FROM k"
)


class FusedOps(ClaimOps):
    def _fused_round(
        self, worker_id: str, outcomes: list[Outcome], claims: list[ClaimRequest], events: Sequence[Row],
        since: dict[tuple[str, int], str], started_events: bool, turn: int, limited_done: bool,
    ) -> RoundResult | None:  # fmt: skip
        from djobs.outcomes import Claim, OutcomeKind, RoundResult

        if not outcomes or any(o.kind is not OutcomeKind.COMPLETE for o in outcomes):
            return None
        kind = ""
        window: tuple[list[str | None], bool, bool] | None = None
        if len(claims) == 1 and claims[0].limited:
            kind, seen = self._limit_kinds.get(claims[0].queue, ("queue", 0.0))
            if time.monotonic() - seen >= KIND_TTL:
                kind = "queue"
            if kind == "keys":
                window = self._window(claims[0], turn)
        elif limited_done or not (len(claims) < 2 or (len(claims) == 2 and self._pairs(claims, 0))):
            return None
        completed, got, state = self._fused(
            worker_id, outcomes, claims, events, since, started_events, limited_done, kind, window
        )
        won = [Claim(records.job(r), r[COL["fanout_id"]], k, r[COL["trace"]]) for r, k in got]
        owned = [o.job_id in completed for o in outcomes]
        if not kind:
            return RoundResult(owned, won, [])
        if state is not None:
            trusted, keyed, bucket, rate_n, rate_per, now, fullest, key_n, key_per, _ = state
            self._limit_kinds[claims[0].queue] = ("keys" if keyed else "queue", time.monotonic())
            whole = window is None or window[1]
            if trusted and (won or whole):
                retry = None
                if bucket is not None and math.floor(bucket + 1e-9) < 1:
                    retry = now + (1 - bucket) * rate_per / rate_n
                if fullest is not None:
                    at = now + (1 - fullest) * key_per / key_n
                    retry = at if retry is None else min(retry, at)
                if window is None or not window[2] or len(won) >= claims[0].limit:
                    return RoundResult(owned, won, [], None, retry)
                self._due_key_lists.pop(claims[0].queue, None)  # a list made earlier left places free: look again
        # Someone claimed there since the statement began, the queue has other limits than the statement was
        # for, or the hand-out needs keys beyond the window: the claim (what is left of it) again, in a
        # transaction that locks before it reads.
        req = dataclasses.replace(claims[0], limit=claims[0].limit - len(won))
        again = self._cycle_tx(worker_id, [], [req], (), {}, started_events, False, turn, False)
        return RoundResult(owned, won + again.claims, [], None, again.limit_retry)

    def _window(self, req: ClaimRequest, turn: int) -> tuple[list[str | None], bool, bool]:
        """The keys a per-key claim looks at in one statement: the first `req.limit` named keys of this round's
        rotation (and NULL, the jobs without a key, wherever it falls), whether that is every due key, and
        whether the list of due keys was made earlier (`limits._due_keys`)."""
        keys, reused = self._due_keys(req.queue)  # type: ignore[attr-defined]
        if not keys:
            return [], True, reused
        start = turn % len(keys)
        order = keys[start:] + keys[:start]
        named = [k for k in order if k is not None]
        first = set(named[: max(1, req.limit)])
        return [k for k in order if k is None or k in first], len(named) <= max(1, req.limit), reused

    def _fused(
        self, worker_id: str, outcomes: list[Outcome], claims: list[ClaimRequest], events: Sequence[Row],
        since: dict[tuple[str, int], str], started_events: bool, limited_done: bool, kind: str,
        window: tuple[list[str | None], bool, bool] | None,
    ) -> tuple[set[str], list[tuple[Row, int]], list[Any] | None]:  # fmt: skip
        """The round as one statement: the ids of the completions written, the claimed rows with the index of
        the request each answers, and (a limited claim) the state row's values."""
        done = [(o.job_id, o.result_json, str(o.attempt), since.pop((o.job_id, o.attempt), None)) for o in outcomes]
        params: list[Any] = [*self._batch_params(done), worker_id]
        params += [*self._batch_params([(i, str(a), e) for (i, a), e in since.items()]), worker_id]
        if kind:
            req, q, n = claims[0], claims[0].queue, claims[0].limit
            params += [q, q, n, n, q, q, n, n]
            if window is None:
                params += [q, *req.types, worker_id, n]
            else:
                params += [window[0], q, q, q, window[1], q, *req.types, worker_id, q, *req.types, worker_id]
            params += [worker_id, int(req.held)]
            params += [q, q] if window is not None else [q]
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
        if kind:
            params.append(limited_done)
        sql = self._fused_sql(claims, with_events, started_events, "keys" if window is not None else kind)
        with self._write_lock:
            got = self.db.execute_sql(sql, params).fetchall()
        j = len(COL)
        completed = {r[j + 1] for r in got if r[j + 1] is not None}
        state = next((json.loads(r[j + 2]) for r in got if r[j + 2] is not None), None)
        limit = claims[0].limit if claims else 0
        rows = [(r[:j], 0 if r[j] is None or r[j] <= limit else 1) for r in got if r[0] is not None]
        return completed, rows, state

    def _fused_sql(self, claims: list[ClaimRequest], with_events: bool, started_events: bool, kind: str) -> str:
        shape = kind or str(len(claims))
        n_types = len(claims[0].types) if claims else 0
        name = f"fused:{shape}:{n_types}:{with_events}:{started_events}"
        sql = self._statements.get(name)
        if sql is not None:
            return sql
        parts = [f"d AS ({self._complete_sql()})", f"m AS ({self._mark_started_sql()})"]
        nulls = ", ".join(["NULL"] * len(COL))
        tail = [f"SELECT {nulls}, NULL, d.id, NULL FROM d"]
        if claims:
            if kind:
                keys = kind == "keys"
                types, take = self.dialect.marks(n_types), _TAKE.format(a="j.")
                parts.append((_PER_KEY if keys else _QUEUE_LEVEL).replace("{types}", types).replace("{take}", take))
                tail.append(
                    _STATE.replace("{nulls}", nulls)
                    .replace("{mine}", "k.keyed" if keys else "NOT k.keyed")
                    .replace("{sure}", " AND (SELECT ok FROM f)" if keys else "")
                    .replace("{fullest}", "(SELECT MAX(t) FROM w WHERE t < 1)" if keys else "NULL")
                )
            else:  # one claim, or a claim and its prefetch
                parts.append(self._claim_ctes(n_types, shape == "2"))
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
