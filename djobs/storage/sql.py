"""The hot SQL, built once per dialect.

Statements are written with `?` placeholders and `{now}` for the database clock, then rendered for the
dialect once. Keeping each statement's text byte-identical lets psycopg 3 prepare it server-side after a few
executions; sending it with `execute_sql` skips Peewee's query builder, which costs more than the driver.
"""

from __future__ import annotations

from dataclasses import dataclass

JOB_COLS = (
    "id", "type", "queue", "args", "priority", "status", "attempt", "max_retries", "last_error", "result",
    "run_at", "started_at", "completed_at", "created_at", "updated_at", "last_heartbeat_at", "locked_by",
    "unique_key", "parent_id", "fanout_id", "fanout_pos", "paused_from", "paused_at", "pause_reason",
    "pause_requested", "progress",
)  # fmt: skip
COLS = ", ".join(JOB_COLS)
J_COLS = ", ".join(f"j.{c}" for c in JOB_COLS)
TERMINAL = "('completed','failed','cancelled')"

SQLITE_NOW = "((julianday('now') - 2440587.5) * 86400.0)"
PG_NOW = "CAST(EXTRACT(EPOCH FROM clock_timestamp()) AS DOUBLE PRECISION)"
D = "DOUBLE PRECISION"
MAX_LOST_REFUNDS = 3  # a never-started claim of a dead worker gets its attempt back at most this often


@dataclass(frozen=True)
class Dialect:
    is_pg: bool

    @property
    def now(self) -> str:
        return PG_NOW if self.is_pg else SQLITE_NOW

    def render(self, sql: str) -> str:
        sql = sql.replace("{now}", self.now).replace("{cols}", COLS).replace("{jcols}", J_COLS)
        return sql.replace("?", "%s") if self.is_pg else sql

    # -- enqueue -------------------------------------------------------------------------------------
    def insert_job(self) -> str:
        return self.render(
            "INSERT INTO djobs_jobs (id, type, queue, args, priority, status, attempt, max_retries, run_at, "
            "created_at, updated_at, unique_key, parent_id, fanout_id, fanout_pos, pause_requested) VALUES "
            f"(?, ?, ?, ?, ?, 'pending', 0, ?, COALESCE(CAST(? AS {D}), {{now}} + CAST(? AS {D})), "
            "{now}, {now}, ?, ?, ?, ?, 0)"
        )

    # -- claim ---------------------------------------------------------------------------------------
    def claim(self, n_types: int) -> str:
        types = ", ".join("?" * n_types) if n_types else "NULL"
        pick = (
            "SELECT id FROM djobs_jobs WHERE queue = ? AND status IN ('pending','retrying') "
            f"AND run_at <= {{now}} AND type IN ({types}) "
            "AND NOT EXISTS (SELECT 1 FROM djobs_queues q WHERE q.name = ? AND q.paused = 1) "
            "AND NOT EXISTS (SELECT 1 FROM djobs_workers w WHERE w.id = ? AND w.paused = 1) "
            "ORDER BY priority DESC, run_at, id LIMIT ?"
        )
        if self.is_pg:
            return self.render(
                f"WITH c AS MATERIALIZED ({pick} FOR UPDATE SKIP LOCKED) "
                "UPDATE djobs_jobs j SET status = 'running', attempt = j.attempt + 1, locked_by = ?, held = ?, "
                "started_at = {now}, last_heartbeat_at = {now}, updated_at = {now} "
                "FROM c WHERE j.id = c.id RETURNING {jcols}"
            )
        return self.render(
            "UPDATE djobs_jobs SET status = 'running', attempt = attempt + 1, locked_by = ?, held = ?, "
            "started_at = {now}, last_heartbeat_at = {now}, updated_at = {now} "
            f"WHERE id IN ({pick}) RETURNING {{cols}}"
        )

    def claim_params(
        self, worker_id: str, queue: str, types: list[str], limit: int, held: bool = False
    ) -> tuple[object, ...]:
        pick = (queue, *types, queue, worker_id, limit)
        return (*pick, worker_id, int(held)) if self.is_pg else (worker_id, int(held), *pick)

    # -- outcomes (ownership-guarded) ------------------------------------------------------------------
    # Ownership is per claim, not per worker: the attempt number changes at every claim, so a worker that
    # claims the same job again (after it was reclaimed or paused) does not own the older execution.
    GUARD = "WHERE id = ? AND locked_by = ? AND attempt = ? AND status = 'running'"

    def complete(self) -> str:
        return self.render(
            "UPDATE djobs_jobs SET status = 'completed', result = ?, completed_at = {now}, updated_at = {now}, "
            f"locked_by = NULL, pause_requested = 0 {self.GUARD}"
        )

    def fail(self) -> str:
        return self.render(
            "UPDATE djobs_jobs SET status = 'failed', last_error = ?, completed_at = {now}, updated_at = {now}, "
            f"locked_by = NULL, pause_requested = 0 {self.GUARD}"
        )

    def retry(self) -> str:
        # A graceful pause requested while the job ran turns its retry into `paused` (resumable).
        return self.render(
            "UPDATE djobs_jobs SET "
            "status = CASE WHEN pause_requested = 1 THEN 'paused' ELSE 'retrying' END, "
            "paused_from = CASE WHEN pause_requested = 1 THEN 'retrying' ELSE paused_from END, "
            "paused_at = CASE WHEN pause_requested = 1 THEN {now} ELSE paused_at END, "
            f"pause_requested = 0, last_error = ?, run_at = {{now}} + CAST(? AS {D}), updated_at = {{now}}, "
            f"locked_by = NULL {self.GUARD}"
        )

    def release(self) -> str:
        """Give a claimed job back untouched: pending again, its attempt refunded."""
        return self.render(
            "UPDATE djobs_jobs SET status = 'pending', attempt = attempt - 1, locked_by = NULL, held = 0, "
            f"updated_at = {{now}} {self.GUARD}"
        )

    def release_all(self) -> str:
        return self.render(
            "UPDATE djobs_jobs SET status = 'pending', attempt = attempt - 1, locked_by = NULL, held = 0, "
            "updated_at = {now} WHERE locked_by = ? AND status = 'running' RETURNING id"
        )

    def suspend(self) -> str:
        """The parent of a fan-out waits (or pauses, if a graceful pause was requested), attempt refunded."""
        return self.render(
            "UPDATE djobs_jobs SET "
            "status = CASE WHEN pause_requested = 1 THEN 'paused' ELSE 'waiting' END, "
            "paused_from = CASE WHEN pause_requested = 1 THEN 'waiting' ELSE paused_from END, "
            "paused_at = CASE WHEN pause_requested = 1 THEN {now} ELSE paused_at END, "
            "pause_requested = 0, attempt = attempt - 1, locked_by = NULL, updated_at = {now} "
            f"{self.GUARD}"
        )

    def insert_event(self) -> str:
        return self.render(
            "INSERT INTO djobs_events (ts, kind, job_id, queue, worker_id, data) VALUES ({now}, ?, ?, ?, ?, ?)"
        )

    # -- durable ---------------------------------------------------------------------------------------
    def insert_call_checkpoint(self) -> str:
        return self.render(
            "INSERT INTO djobs_checkpoints (job_id, key, call_index, name, value, error, created_at) "
            "SELECT ?, ?, ?, ?, ?, ?, {now} WHERE EXISTS (SELECT 1 FROM djobs_jobs "
            "WHERE id = ? AND locked_by = ? AND attempt = ? AND status = 'running') ON CONFLICT (job_id, key) DO NOTHING"
        )

    def upsert_named_checkpoint(self) -> str:
        return self.render(
            "INSERT INTO djobs_checkpoints (job_id, key, call_index, name, value, error, created_at) "
            "SELECT ?, ?, NULL, ?, ?, NULL, {now} WHERE EXISTS (SELECT 1 FROM djobs_jobs "
            "WHERE id = ? AND locked_by = ? AND attempt = ? AND status = 'running') "
            "ON CONFLICT (job_id, key) DO UPDATE SET value = excluded.value, created_at = excluded.created_at"
        )

    # -- liveness --------------------------------------------------------------------------------------
    def heartbeat_worker(self) -> str:
        return self.render("UPDATE djobs_workers SET heartbeat_at = {now}, running = ? WHERE id = ?")

    def heartbeat_jobs(self) -> str:
        if self.is_pg:
            return self.render(
                "UPDATE djobs_jobs SET last_heartbeat_at = {now} WHERE id IN (SELECT id FROM djobs_jobs "
                "WHERE locked_by = ? AND status = 'running' ORDER BY id FOR UPDATE SKIP LOCKED)"
            )
        return self.render(
            "UPDATE djobs_jobs SET last_heartbeat_at = {now} WHERE locked_by = ? AND status = 'running'"
        )

    def reap(self) -> str:
        """Running jobs whose worker has been silent for the stale age go back to pending, or fail once
        their attempts are spent (attempts are counted at claim and not refunded here), except a job that
        never started (held in the lost worker's prefetch line): its attempt is given back."""
        refund = f"(held = 1 AND lost < {MAX_LOST_REFUNDS})"
        spent = f"(NOT {refund} AND attempt > max_retries)"
        return self.render(
            "UPDATE djobs_jobs SET "
            f"status = CASE WHEN {spent} THEN 'failed' ELSE 'pending' END, "
            f"last_error = CASE WHEN {spent} THEN ? ELSE last_error END, "
            f"completed_at = CASE WHEN {spent} THEN {{now}} ELSE NULL END, "
            f"attempt = CASE WHEN {refund} THEN attempt - 1 ELSE attempt END, "
            f"lost = CASE WHEN {refund} THEN lost + 1 ELSE lost END, held = 0, "
            "locked_by = NULL, updated_at = {now} "
            "WHERE status = 'running' AND NOT EXISTS (SELECT 1 FROM djobs_workers w "
            f"WHERE w.id = djobs_jobs.locked_by AND w.stopped_at IS NULL AND w.heartbeat_at >= {{now}} - CAST(? AS {D})) "
            "RETURNING id, status, queue, type, fanout_id"
        )

    def cancel_tree(self) -> str:
        return self.render(
            "WITH RECURSIVE t(id) AS (SELECT CAST(? AS VARCHAR(36)) UNION ALL "
            "SELECT j.id FROM djobs_jobs j JOIN t ON j.parent_id = t.id) "
            "UPDATE djobs_jobs SET status = 'cancelled', completed_at = {now}, updated_at = {now}, "
            "locked_by = NULL, pause_requested = 0, last_error = COALESCE(?, last_error) "
            f"WHERE id IN (SELECT id FROM t) AND status NOT IN {TERMINAL} RETURNING id, queue, fanout_id"
        )
