"""Fleet-wide limits, stored with the queue and enforced inside the claim.

`running` caps a queue's running jobs across every worker, `key_running` caps them per key; `rate` and
`key_rate` are token buckets holding at most N, refilled continuously at N per period. A limited queue is
claimed under its row lock (PostgreSQL `FOR UPDATE`; SQLite's write transaction serialises anyway), so two
workers never both see the last free place. The unlimited claim skips a limited queue outright (its row says
`limited = 1`), so a worker that has not yet heard of a new limit claims nothing there rather than too much.

Per-key limits are fair across keys: each claim hands out its places one key at a time, starting from a
different key each round, so one busy key cannot starve the others. Jobs without a key are one more turn
in that rotation, bound only by the queue's own limits.
"""

from __future__ import annotations

import json
import math
import time
from typing import TYPE_CHECKING, Any

from djobs import validate
from djobs.jobs import Limits, Rate
from djobs.storage.base import Row, StorageBase
from djobs.storage.dialect import BY_ID, COL, IS_CLAIMABLE
from djobs.storage.errors import operation

if TYPE_CHECKING:
    from djobs.outcomes import ClaimRequest

_D = "DOUBLE PRECISION"
_QUEUE = (
    "SELECT paused, limited, running_cap, rate_n, rate_per, key_running_cap, key_rate_n, key_rate_per, tokens, "
    "refilled_at, {now} FROM djobs_queues WHERE name = ?"
)
# PostgreSQL: a round's limited queues are locked at once, in name order (two workers claiming the same queues
# in different orders cannot deadlock), by the round's completion statement when it has one (`claims.py`),
# else by this one; each row as a JSON array of `_QUEUE`'s columns, so both statements return one shape.
LOCKED = (
    "SELECT name, json_build_array(paused, limited, running_cap, rate_n, rate_per, key_running_cap, key_rate_n, "
    "key_rate_per, tokens, refilled_at, {now})::text AS q FROM djobs_queues WHERE name = ANY(?::text[]) "
    "ORDER BY name FOR UPDATE"
)
# Read in its own statement once the queue's row is locked: under READ COMMITTED a statement that waited
# for the lock still reads other rows as they were before the wait, so a count taken in the locking
# statement would miss the jobs the previous holder claimed (and the cap would be exceeded).
_RUNNING = "SELECT COUNT(*) FROM djobs_jobs WHERE queue = ? AND status = 'running'"
# Due keys of a queue (NULL for jobs without one). Finding them reads every due job of the queue, so a
# claim reuses the list for a while (KEYS_TTL); what decides how many each key may take (running counts,
# buckets) is read fresh in every claim.
_DUE_KEYS = f"SELECT DISTINCT job_key FROM djobs_jobs WHERE queue = ? AND {IS_CLAIMABLE} AND run_at <= {{now}} LIMIT ?"
_KEY_RUNNING = (
    "SELECT job_key, COUNT(*) FROM djobs_jobs WHERE queue = ? AND status = 'running' AND job_key IS NOT NULL "
    "GROUP BY job_key"
)
# The pick of a limited claim: as the unlimited one, without skipping limited queues, optionally one key.
_PICK = (
    f"SELECT id FROM djobs_jobs WHERE queue = ? AND {IS_CLAIMABLE} AND run_at <= {{now}} AND type IN ({{types}}) "
    "{key}AND NOT EXISTS (SELECT 1 FROM djobs_workers w WHERE w.id = ? AND w.paused = 1) "
    "ORDER BY priority DESC, run_at, id LIMIT ?"
)
# SQLite: the spending keys' buckets in one statement (a row of values each): a round's keys cost one
# statement's overhead, not one each as an executemany of a one-row upsert did.
_SPEND_SQLITE = (
    "INSERT INTO djobs_key_buckets (queue, job_key, tokens, refilled_at) VALUES {rows} "
    "ON CONFLICT (queue, job_key) DO UPDATE SET tokens = excluded.tokens, refilled_at = excluded.refilled_at"
)
#: A claim looks at most this many distinct keys per round.
MAX_KEYS = 500
#: How long a queue's list of due keys is reused while claims through it fill every place offered (a claim
#: that leaves places free lists the keys again at once).
KEYS_TTL = 0.25
#: ... or longer, this many times what listing them took: listing reads every due job of the queue (SQLite
#: and PostgreSQL 15 cannot skip from key to key, and jobs without a key have no index of their own), 60-70
#: ms under a backlog of 200,000, so a backlog may cost a claiming worker at most a twentieth of its time.
KEYS_COST_TIMES = 20


def _refill(tokens: Any, refilled_at: Any, n: float, per: float, now: float) -> float:
    if tokens is None or refilled_at is None:
        return n
    return min(n, float(tokens) + max(0.0, now - float(refilled_at)) * n / per)


def _shares(order: list[str | None], n: int, allowance: Any) -> dict[str | None, int]:
    """`n` places handed out one at a time round `order`, each key up to `allowance(key)`, asked once and only
    of the keys reached, in order."""
    share: dict[str | None, int] = {}
    allow: dict[str | None, float] = {}
    left = n
    while left > 0:
        gave = False
        for k in order:
            if left == 0:
                break
            a = allow.get(k)
            if a is None:
                a = allow[k] = allowance(k)
            if share.get(k, 0) < a:
                share[k] = share.get(k, 0) + 1
                left -= 1
                gave = True
        if not gave:
            break
    return share


def locked_rows(rows: list[Row]) -> dict[str, Row]:
    """`LOCKED`'s (name, JSON array) rows as `_QUEUE` rows by name; other rows (None in the JSON column: the
    completion statement's own rows, see `claims.py`) are left out."""
    return {r[0]: tuple(json.loads(r[1])) for r in rows if r[1] is not None}


def _limits(row: Any) -> Limits:
    """Limits from (running_cap, rate_n, rate_per, key_running_cap, key_rate_n, key_rate_per)."""
    running, rn, rp, key_running, kn, kp = row
    return Limits(
        rate=Rate(rn, rp) if rn else None, running=int(running) if running is not None else None,
        key_rate=Rate(kn, kp) if kn else None, key_running=int(key_running) if key_running is not None else None,
    )  # fmt: skip


class LimitOps(StorageBase):
    # -- settings ------------------------------------------------------------------------------------------
    @operation
    def set_limits(
        self, queue: str, rate: Rate | None, running: int | None, key_rate: Rate | None, key_running: int | None
    ) -> None:
        """Replace the queue's limits (all None: no limits). A new or changed rate starts with a full bucket."""
        validate.name("queue name", queue)
        for what, cap in (("running", running), ("key_running", key_running)):
            if cap is not None and validate.int32(what, cap) < 0:
                raise ValueError(f"{what} must be >= 0, got {cap}")
        for what, r in (("rate", rate), ("key_rate", key_rate)):
            if r is not None and not isinstance(r, Rate):
                raise TypeError(f"{what} must be a djobs.Rate, got {type(r).__name__}")
        limited = int(any(v is not None for v in (rate, running, key_rate, key_running)))
        params = (
            limited, running, rate.n if rate else None, rate.per if rate else None, key_running,
            key_rate.n if key_rate else None, key_rate.per if key_rate else None, rate.n if rate else None,
        )  # fmt: skip
        with self.tx():
            self._ex(
                "INSERT INTO djobs_queues (name, paused, limited) VALUES (?, 0, 0) ON CONFLICT (name) DO NOTHING",
                (queue,),
            )
            self._ex(
                "UPDATE djobs_queues SET limited = ?, running_cap = ?, rate_n = ?, rate_per = ?, key_running_cap = ?, "
                "key_rate_n = ?, key_rate_per = ?, tokens = ?, refilled_at = {now} WHERE name = ?",
                (*params, queue),
            )
            if key_rate is None:
                self._ex("DELETE FROM djobs_key_buckets WHERE queue = ?", (queue,))
            self._event("queue_limits", None, queue, None, None)
            self._notify("djobs_control")
            self._notify()
        self.control_local()
        self.wake_local()

    @operation(read=True)
    def limits(self, queue: str) -> Limits:
        row = self._ex(
            "SELECT running_cap, rate_n, rate_per, key_running_cap, key_rate_n, key_rate_per FROM djobs_queues "
            "WHERE name = ? AND limited = 1",
            (queue,),
        ).fetchone()
        return _limits(row) if row else Limits()

    @operation(read=True)
    def all_limits(self) -> dict[str, Limits]:
        rows = self._ex(
            "SELECT name, running_cap, rate_n, rate_per, key_running_cap, key_rate_n, key_rate_per FROM djobs_queues "
            "WHERE limited = 1 ORDER BY name"
        ).fetchall()
        return {r[0]: _limits(r[1:]) for r in rows}

    @operation(read=True)
    def limited_queues(self) -> set[str]:
        return {r[0] for r in self._ex("SELECT name FROM djobs_queues WHERE limited = 1").fetchall()}

    # -- the claim -----------------------------------------------------------------------------------------
    def _pick_sql(self, n_types: int, keyed: bool, is_null: bool = False) -> str:
        name = f"limited-pick:{n_types}:{keyed}:{is_null}"
        sql = self._statements.get(name)
        if sql is None:
            key = "AND job_key IS NULL " if is_null else "AND job_key = ? " if keyed else ""
            pick = _PICK.replace("{types}", self.dialect.marks(n_types)).replace("{key}", key)
            take = (
                "status = 'running', attempt = {a}attempt + 1, locked_by = ?, held = ?, started_at = {{now}}, "
                "last_heartbeat_at = {{now}}, updated_at = {{now}}, wait_kind = NULL, wait_signal = NULL"
            )
            if self.is_pg:
                sql = (
                    f"WITH c AS MATERIALIZED ({pick} FOR UPDATE SKIP LOCKED) UPDATE djobs_jobs j SET "
                    f"{take.format(a='j.')} WHERE {BY_ID} RETURNING {{jcols}}"
                )
            else:
                sql = f"UPDATE djobs_jobs SET {take.format(a='')} WHERE id IN ({pick}) RETURNING {{cols}}"
            sql = self._statements[name] = self.dialect.render(sql)
        return sql

    def _take(self, worker_id: str, req: ClaimRequest, n: int, key: str | None = None, keyed: bool = False) -> list[Row]:
        if n <= 0:
            return []
        pick: tuple[Any, ...] = (req.queue, *req.types)
        if keyed and key is not None:
            pick += (key,)
        pick += (worker_id, n)
        take = (worker_id, int(req.held))
        params = (*pick, *take) if self.is_pg else (*take, *pick)
        sql = self._pick_sql(len(req.types), keyed and key is not None, keyed and key is None)
        return list(self.db.execute_sql(sql, params).fetchall())

    def _lock_limited(self, queues: list[str]) -> dict[str, Row]:
        """PostgreSQL: lock these queues' rows (see LOCKED); their rows by name (a queue without one: absent)."""
        return locked_rows(self._ex(LOCKED, (queues,)).fetchall())

    def _claim_limited(
        self, worker_id: str, req: ClaimRequest, turn: int, locked: dict[str, Row] | None = None
    ) -> tuple[list[Row], float | None]:
        """Claim under the queue's limits (inside the caller's transaction). Returns the rows and, when
        limits held jobs back, the epoch time worth trying again (None: when something finishes). `locked`:
        the queue rows this transaction locked already (`_lock_limited`); else the queue's row is locked here."""
        if locked is not None:
            row = locked.get(req.queue)
        else:
            row = self._ex(_QUEUE + self.dialect.for_update, (req.queue,)).fetchone()
        if row is None or not row[1]:
            return self._take(worker_id, req, req.limit), None
        paused, _, running_cap, rate_n, rate_per, key_cap, key_n, key_per, tokens, refilled_at, now = row
        now = float(now)
        if paused:
            return [], None
        n = req.limit
        if self.is_pg and key_cap is None and not key_n:
            return self._claim_capped_pg(worker_id, req, running_cap, rate_n, rate_per, tokens, refilled_at, now)
        if running_cap is not None:
            running = self._ex(_RUNNING, (req.queue,)).fetchone()[0]
            n = min(n, int(running_cap) - int(running))
        bucket = None
        if rate_n:
            bucket = _refill(tokens, refilled_at, float(rate_n), float(rate_per), now)
            n = min(n, math.floor(bucket + 1e-9))
        retry: float | None = None
        if n <= 0:
            if bucket is not None and bucket < 1:
                retry = now + (1 - bucket) * float(rate_per) / float(rate_n)
            return [], retry
        if key_cap is None and not key_n:
            rows = self._take(worker_id, req, n)
        else:
            rows, retry = self._claim_keys(worker_id, req, n, key_cap, key_n, key_per, now, turn)
        if bucket is not None:
            self._ex(
                "UPDATE djobs_queues SET tokens = ?, refilled_at = ? WHERE name = ?", (bucket - len(rows), now, req.queue)
            )
        elif self.is_pg:  # the stamp a round claiming in one statement looks for (`fused.py`)
            self._ex("UPDATE djobs_queues SET refilled_at = ? WHERE name = ?", (now, req.queue))
        return rows, retry

    def _claim_capped_pg(
        self, worker_id: str, req: ClaimRequest, cap: Any, rate_n: Any, rate_per: Any, tokens: Any, refilled_at: Any,
        now: float,
    ) -> tuple[list[Row], float | None]:  # fmt: skip
        """PostgreSQL, queue-level limits only: after the queue's row is locked, one statement counts the
        running jobs (a statement begun after the lock sees what the previous holder claimed), claims within
        the cap and spends the claimed jobs' tokens: two round trips a round instead of four."""
        n = req.limit
        bucket = None
        if rate_n:
            bucket = _refill(tokens, refilled_at, float(rate_n), float(rate_per), now)
            n = min(n, math.floor(bucket + 1e-9))
            if n <= 0:
                return [], now + (1 - bucket) * float(rate_per) / float(rate_n) if bucket < 1 else None
        name = f"limited-capped:{len(req.types)}"
        sql = self._statements.get(name)
        if sql is None:
            pick = _PICK.replace("{types}", self.dialect.marks(len(req.types))).replace("{key}", "").replace(
                "LIMIT ?",
                "LIMIT GREATEST(0, LEAST(CAST(? AS INTEGER), CAST(? AS INTEGER) - "
                "(SELECT COUNT(*) FROM djobs_jobs WHERE queue = ? AND status = 'running')))",
            )
            sql = self._statements[name] = self.dialect.render(
                f"WITH c AS MATERIALIZED ({pick} FOR UPDATE SKIP LOCKED), "
                "u AS (UPDATE djobs_jobs j SET status = 'running', attempt = j.attempt + 1, locked_by = ?, held = ?, "
                "started_at = {now}, last_heartbeat_at = {now}, updated_at = {now}, wait_kind = NULL, "
                f"wait_signal = NULL WHERE {BY_ID} RETURNING {{jcols}}), "
                # The row is stamped even without a rate: a round claiming in one statement (`fused.py`) trusts
                # its running count only if the row is as it was when that statement began.
                f"t AS (UPDATE djobs_queues SET tokens = CASE WHEN CAST(? AS BOOLEAN) THEN CAST(? AS {_D}) - "
                "(SELECT COUNT(*) FROM u) ELSE tokens END, refilled_at = ? WHERE name = ?) SELECT * FROM u"
            )
        params = (
            req.queue, *req.types, worker_id, n, None if cap is None else int(cap), req.queue, worker_id, int(req.held),
            bucket is not None, bucket or 0.0, now, req.queue,
        )  # fmt: skip
        return list(self.db.execute_sql(sql, params).fetchall()), None

    def _claim_keys(
        self, worker_id: str, req: ClaimRequest, n: int, key_cap: Any, key_n: Any, key_per: Any, now: float, turn: int
    ) -> tuple[list[Row], float | None]:
        limits = (key_cap, key_n, key_per, now, turn)
        rows, retry, reused = self._claim_keys_once(worker_id, req, n, *limits)
        if reused and len(rows) < n:
            # The reused list left places free: a key may have got due since it was made (or a listed one ran
            # out). Look again now, not when the worker next wakes, which may be long after.
            self._due_key_lists.pop(req.queue, None)
            more, again, _ = self._claim_keys_once(worker_id, req, n - len(rows), *limits)
            rows += more
            retry = again if retry is None else retry if again is None else min(retry, again)
        return rows, retry

    def _claim_keys_once(
        self, worker_id: str, req: ClaimRequest, n: int, key_cap: Any, key_n: Any, key_per: Any, now: float, turn: int
    ) -> tuple[list[Row], float | None, bool]:
        q = req.queue
        keys, reused = self._due_keys(q)
        if not keys:
            return [], None, reused
        # Hand out the places one key at a time, starting from a different key each round. The keys' buckets
        # are read as the hand-out reaches them, `n` keys at a time: a round of 10 places over 500 due keys
        # reads 10 buckets, not 500.
        start = turn % len(keys)
        order = keys[start:] + keys[:start]
        named = [k for k in order if k is not None]
        step = max(1, n)
        running, stored = self._key_state(q, named[:step], key_cap is not None, bool(key_n))
        stored = {k: stored.get(k, (None, None)) for k in named[:step]}  # a key with no bucket yet: a full one
        read = step
        buckets: dict[str, float] = {}
        cap = math.inf if key_cap is None else int(key_cap)
        rate_n, rate_per = (float(key_n), float(key_per)) if key_n else (0.0, 0.0)

        def allowance(k: str | None) -> float:
            """Places key `k` may take now (jobs without a key: only the queue's own limits bind them)."""
            nonlocal read
            if k is None:
                return math.inf
            allow = cap - int(running.get(k, 0))
            if rate_n:
                while k not in stored:  # the next `step` keys (the hand-out reaches keys in `named` order)
                    chunk = named[read : read + step]
                    got = self._key_buckets(q, chunk)
                    stored.update({c: got.get(c, (None, None)) for c in chunk})
                    read += step
                buckets[k] = b = _refill(*stored[k], rate_n, rate_per, now)
                allow = min(allow, math.floor(b + 1e-9))
            return allow

        share = _shares(order, n, allowance)
        rows: list[Row] = []
        keyed = [(k, m) for k, m in share.items() if k is not None and m]  # in `order`: first places go first
        if keyed:
            # One statement for every key instead of a statement per key (on PostgreSQL it also spends the
            # keys' tokens).
            if self.is_pg:
                rows = self._take_keys_pg(worker_id, req, keyed, [(k, str(buckets[k])) for k, _ in keyed] if key_n else None, now)
            else:
                rows = self._take_keys_sqlite(worker_id, req, keyed)
                if key_n and rows:
                    self._spend_sqlite(q, rows, buckets, now)
        if share.get(None):
            rows.extend(self._take(worker_id, req, share[None], None, keyed=True))
        retry: float | None = None
        if key_n:
            if not rows:  # when to look again matters only now: every key's bucket, not just those visited
                for k in order:
                    if k is not None and k not in buckets:
                        allowance(k)
            empty = [b for b in buckets.values() if b < 1]
            retry = now + (1 - max(empty)) * float(key_per) / float(key_n) if empty else None
        return rows, retry, reused

    def _due_keys(self, queue: str) -> tuple[list[str | None], bool]:
        """The queue's due keys in a fixed order (NULL last), and whether they come from a list made earlier
        (see KEYS_TTL)."""
        now = time.monotonic()
        hit = self._due_key_lists.get(queue)
        if hit is not None and now < hit[0]:
            return hit[1], True
        keys: list[str | None] = [r[0] for r in self._ex(_DUE_KEYS, (queue, MAX_KEYS)).fetchall()]
        keys.sort(key=lambda k: (k is None, k or ""))
        done = time.monotonic()
        self._due_key_lists[queue] = (done + max(KEYS_TTL, KEYS_COST_TIMES * (done - now)), keys)
        return keys, False

    def _key_state(
        self, queue: str, keys: list[str], counts: bool, buckets: bool
    ) -> tuple[dict[str, Any], dict[str, tuple[Any, Any]]]:
        """Running jobs per key (if `counts`) and the keys' stored buckets (if `buckets`); both in one
        statement when both are asked."""
        if not (counts and buckets and keys):
            running = dict(self._ex(_KEY_RUNNING, (queue,)).fetchall()) if counts else {}
            return running, self._key_buckets(queue, keys) if buckets else {}
        listed, param = self._listed(keys)
        rows = self._ex(
            "SELECT 0, job_key, COUNT(*), NULL FROM djobs_jobs WHERE queue = ? AND status = 'running' "
            "AND job_key IS NOT NULL GROUP BY job_key UNION ALL "
            f"SELECT 1, job_key, tokens, refilled_at FROM djobs_key_buckets WHERE queue = ? AND job_key {listed}",
            (queue, queue, *param),
        ).fetchall()
        return {r[1]: r[2] for r in rows if r[0] == 0}, {r[1]: (r[2], r[3]) for r in rows if r[0] == 1}

    def _key_buckets(self, queue: str, keys: list[str]) -> dict[str, tuple[Any, Any]]:
        if not keys:
            return {}
        listed, param = self._listed(keys)
        rows = self._ex(
            f"SELECT job_key, tokens, refilled_at FROM djobs_key_buckets WHERE queue = ? AND job_key {listed}",
            (queue, *param),
        ).fetchall()
        return {r[0]: (r[1], r[2]) for r in rows}

    def _listed(self, keys: list[str]) -> tuple[str, list[Any]]:
        """`job_key <listed>` matches `keys`: one array parameter on PostgreSQL, an IN list of `len(keys)`
        parameters on SQLite (one statement text per length, at most a round's places of them in use; a
        JSON array through `json_each` cost SQLite four times as much for ten keys)."""
        if self.is_pg:
            return "= ANY(?::text[])", [keys]
        return f"IN ({self.dialect.marks(len(keys))})", keys

    def _spend_sqlite(self, queue: str, claimed: list[Row], buckets: dict[str, float], now: float) -> None:
        """Store the claiming keys' buckets less what each claimed (SQLite; PostgreSQL's claim does it)."""
        spent: dict[str, int] = {}
        at = COL["job_key"]
        for r in claimed:
            spent[r[at]] = spent.get(r[at], 0) + 1
        name = f"spend:{len(spent)}"  # one text per number of keys, at most a round's places of them
        sql = self._statements.get(name)
        if sql is None:
            sql = self._statements[name] = _SPEND_SQLITE.replace("{rows}", ", ".join(["(?, ?, ?, ?)"] * len(spent)))
        params: list[Any] = []
        for k, m in spent.items():
            params += (queue, k, buckets[k] - m, now)
        self.db.execute_sql(sql, params)

    def _take_keys_sqlite(self, worker_id: str, req: ClaimRequest, shares: list[tuple[str, int]]) -> list[Row]:
        """SQLite: each key's pick is an arm of one UNION ALL (SQLite has no LATERAL, and a LIMIT cannot be
        correlated); one statement text per number of keys, so at most a batch's worth of texts."""
        name = f"limited-keys:{len(req.types)}:{len(shares)}"
        sql = self._statements.get(name)
        if sql is None:
            arm = (
                f"SELECT id FROM (SELECT id FROM djobs_jobs WHERE queue = ? AND job_key = ? AND {IS_CLAIMABLE} "
                f"AND run_at <= {{now}} AND type IN ({self.dialect.marks(len(req.types))}) "
                "ORDER BY priority DESC, run_at, id LIMIT ?)"
            )
            sql = self._statements[name] = self.dialect.render(
                "UPDATE djobs_jobs SET status = 'running', attempt = attempt + 1, locked_by = ?, held = ?, "
                "started_at = {now}, last_heartbeat_at = {now}, updated_at = {now}, wait_kind = NULL, "
                f"wait_signal = NULL WHERE id IN ({' UNION ALL '.join([arm] * len(shares))}) "
                "AND NOT EXISTS (SELECT 1 FROM djobs_workers w WHERE w.id = ? AND w.paused = 1) RETURNING {cols}"
            )
        params: list[Any] = [worker_id, int(req.held)]
        for k, n in shares:
            params += [req.queue, k, *req.types, n]
        params.append(worker_id)
        return list(self.db.execute_sql(sql, params).fetchall())

    def _take_keys_pg(
        self, worker_id: str, req: ClaimRequest, shares: list[tuple[str, int]], buckets: list[tuple[str, str]] | None,
        now: float,
    ) -> list[Row]:  # fmt: skip
        """PostgreSQL: each key's share by a LATERAL pick; with `buckets` (key, refilled tokens) the statement
        also stores each claiming key's bucket less what it claimed."""
        name = f"limited-keys:{len(req.types)}:{buckets is not None}"
        sql = self._statements.get(name)
        if sql is None:
            take = (
                "UPDATE djobs_jobs j SET status = 'running', attempt = j.attempt + 1, locked_by = ?, held = ?, "
                "started_at = {now}, last_heartbeat_at = {now}, updated_at = {now}, wait_kind = NULL, "
                f"wait_signal = NULL WHERE {BY_ID} RETURNING {{jcols}}"
            )
            claim = (
                "WITH c AS MATERIALIZED (SELECT p.id FROM unnest(?::text[], ?::int[]) AS v(k, n) CROSS JOIN LATERAL "
                f"(SELECT id FROM djobs_jobs WHERE queue = ? AND job_key = v.k AND {IS_CLAIMABLE} "
                f"AND run_at <= {{now}} AND type IN ({self.dialect.marks(len(req.types))}) AND NOT EXISTS "
                "(SELECT 1 FROM djobs_workers w WHERE w.id = ? AND w.paused = 1) ORDER BY priority DESC, run_at, id "
                "LIMIT v.n FOR UPDATE SKIP LOCKED) p) "
            )
            if buckets is None:
                claim += take
            else:
                claim += (
                    f", u AS ({take}), b AS (INSERT INTO djobs_key_buckets (queue, job_key, tokens, refilled_at) "
                    f"SELECT ?, u.job_key, MIN(CAST(v.t AS {_D})) - COUNT(*), ? FROM u JOIN "
                    f"{self.dialect.batch_source(('k', 't'))} ON v.k = u.job_key GROUP BY u.job_key "
                    "ON CONFLICT (queue, job_key) DO UPDATE SET tokens = excluded.tokens, refilled_at = excluded.refilled_at) "
                    "SELECT * FROM u"
                )
            sql = self._statements[name] = self.dialect.render(claim)
        params: tuple[Any, ...] = (
            [k for k, _ in shares], [n for _, n in shares], req.queue, *req.types, worker_id, worker_id, int(req.held)
        )
        if buckets is not None:
            params += (req.queue, now, *self._batch_params(buckets))
        return list(self.db.execute_sql(sql, params).fetchall())
