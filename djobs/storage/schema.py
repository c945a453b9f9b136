"""The schema, as Peewee models bound to one database, and its versioned creation and migration.

Models are built per storage (`make_models(db)`) so several stores can live in one process. They define the
tables; every statement djobs runs is prebuilt SQL in the operation modules. Times are epoch seconds
(double precision) so one SQL text serves both dialects.

Migrations are additive and idempotent: a database of an older version gains the missing tables, columns
(with their defaults) and indexes under the same lock that creates a new one, so many processes of a newer
version may start at once against an older database.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import peewee as pw

from djobs.storage.dialect import CLAIMABLE_VALUES, FINISHED, IS_CLAIMABLE, NOT_HOT, TERMINAL, sql_list

SCHEMA_VERSION = 6


def make_models(db: pw.Database) -> SimpleNamespace:
    class Base(pw.Model):
        class Meta:
            database = db
            legacy_table_names = False

    class Job(Base):
        id = pw.CharField(max_length=36, primary_key=True)
        type = pw.CharField(max_length=255)
        queue = pw.CharField(max_length=255, default="default")
        args = pw.TextField(default="null")
        priority = pw.IntegerField(default=0)
        status = pw.CharField(max_length=16, default="pending")
        attempt = pw.IntegerField(default=0)
        max_retries = pw.IntegerField(default=3)
        last_error = pw.TextField(null=True)
        result = pw.TextField(null=True)
        run_at = pw.DoubleField()
        started_at = pw.DoubleField(null=True)
        completed_at = pw.DoubleField(null=True)
        created_at = pw.DoubleField()
        updated_at = pw.DoubleField()
        last_heartbeat_at = pw.DoubleField(null=True)
        locked_by = pw.CharField(max_length=300, null=True)
        unique_key = pw.CharField(max_length=255, null=True)
        parent_id = pw.CharField(max_length=36, null=True)
        fanout_id = pw.CharField(max_length=48, null=True)
        fanout_pos = pw.IntegerField(null=True)
        paused_from = pw.CharField(max_length=16, null=True)
        paused_at = pw.DoubleField(null=True)
        pause_reason = pw.TextField(null=True)
        pause_requested = pw.IntegerField(default=0)
        progress = pw.TextField(null=True)
        # 1 while a prefetched claim waits in its worker's line, until the worker records its start (in its
        # next round): a worker lost in between gives the attempt back (the job never started).
        held = pw.IntegerField(default=0, constraints=[pw.SQL("DEFAULT 0")])
        # How many times a held (never started) claim was given back after its worker died: bounded, so a
        # job that kills its worker the instant it starts still ends failed.
        lost = pw.IntegerField(default=0, constraints=[pw.SQL("DEFAULT 0")])
        # Seconds an attempt may run (None: the worker's default, if any).
        timeout = pw.DoubleField(null=True)
        # Groups jobs for per-key limits (a tenant, an account).
        job_key = pw.CharField(max_length=255, null=True)
        meta = pw.TextField(null=True)
        last_traceback = pw.TextField(null=True)
        # Attempts given back in a row (worker stop, pause, lost connection): bounded, so nothing loops.
        refunds = pw.IntegerField(default=0, constraints=[pw.SQL("DEFAULT 0")])
        # Why a waiting job waits: "fanout", "sleep" or "signal" (then `wait_signal` names the signal).
        wait_kind = pw.CharField(max_length=16, null=True)
        wait_signal = pw.CharField(max_length=255, null=True)
        # The unique key stays held until this time, whatever the status (idempotency windows).
        unique_until = pw.DoubleField(null=True)
        backoff = pw.TextField(null=True)
        # W3C trace context of the request that enqueued the job (tracing, when enabled).
        trace = pw.TextField(null=True)

        class Meta:
            table_name = "djobs_jobs"

    class Checkpoint(Base):
        job_id = pw.CharField(max_length=36)
        key = pw.CharField(max_length=2000)
        call_index = pw.IntegerField(null=True)
        name = pw.CharField(max_length=255)
        value = pw.TextField(null=True)
        error = pw.TextField(null=True)
        created_at = pw.DoubleField()

        class Meta:
            table_name = "djobs_checkpoints"
            primary_key = pw.CompositeKey("job_id", "key")

    class FanOut(Base):
        id = pw.CharField(max_length=48, primary_key=True)
        parent_id = pw.CharField(max_length=36, index=True)
        call_key = pw.CharField(max_length=2000)
        strategy = pw.CharField(max_length=32)
        total = pw.IntegerField()
        timeout_at = pw.DoubleField(null=True)
        cancel_on_parent_failure = pw.IntegerField(default=0)
        decided = pw.CharField(max_length=16, null=True)
        created_at = pw.DoubleField()

        class Meta:
            table_name = "djobs_fanouts"

    class QueueRow(Base):
        name = pw.CharField(max_length=255, primary_key=True)
        paused = pw.IntegerField(default=0)
        paused_at = pw.DoubleField(null=True)
        pause_reason = pw.TextField(null=True)
        # Fleet-wide limits (NULL: none). `limited` is 1 when any is set, so the unlimited claim can skip
        # such a queue with the same probe that skips paused ones.
        limited = pw.IntegerField(default=0, constraints=[pw.SQL("DEFAULT 0")])
        rate_n = pw.DoubleField(null=True)
        rate_per = pw.DoubleField(null=True)
        running_cap = pw.IntegerField(null=True)
        key_rate_n = pw.DoubleField(null=True)
        key_rate_per = pw.DoubleField(null=True)
        key_running_cap = pw.IntegerField(null=True)
        tokens = pw.DoubleField(null=True)
        refilled_at = pw.DoubleField(null=True)

        class Meta:
            table_name = "djobs_queues"

    class Worker(Base):
        id = pw.CharField(max_length=300, primary_key=True)
        host = pw.CharField(max_length=255)
        pid = pw.IntegerField()
        queues = pw.TextField()
        handlers = pw.TextField()
        started_at = pw.DoubleField()
        heartbeat_at = pw.DoubleField()
        running = pw.IntegerField(default=0)
        paused = pw.IntegerField(default=0)
        pause_mode = pw.CharField(max_length=16, null=True)
        pause_reason = pw.TextField(null=True)
        paused_at = pw.DoubleField(null=True)
        stopped_at = pw.DoubleField(null=True)

        class Meta:
            table_name = "djobs_workers"

    class JobType(Base):
        """Job types some worker registered, so producers without the handler code can enqueue them."""

        name = pw.CharField(max_length=255, primary_key=True)
        queue = pw.CharField(max_length=255)
        retries = pw.IntegerField()
        priority = pw.IntegerField()
        timeout = pw.DoubleField(null=True)
        options = pw.TextField(null=True)
        seen_at = pw.DoubleField()

        class Meta:
            table_name = "djobs_job_types"

    class Signal(Base):
        id = pw.BigAutoField()
        job_id = pw.CharField(max_length=36)
        name = pw.CharField(max_length=255)
        payload = pw.TextField(null=True)
        sent_at = pw.DoubleField()
        # The durable call (checkpoint key) that consumed it; NULL while it waits for a receiver.
        consumed_by = pw.CharField(max_length=2000, null=True)

        class Meta:
            table_name = "djobs_signals"
            indexes = ((("job_id", "name", "id"), False),)

    class KeyBucket(Base):
        """Per-key token buckets of queues with a `key_rate` limit."""

        queue = pw.CharField(max_length=255)
        job_key = pw.CharField(max_length=255)
        tokens = pw.DoubleField()
        refilled_at = pw.DoubleField()

        class Meta:
            table_name = "djobs_key_buckets"
            primary_key = pw.CompositeKey("queue", "job_key")

    class Lease(Base):
        """Leadership: the worker holding the lease runs the fleet-wide duties until it expires."""

        name = pw.CharField(max_length=64, primary_key=True)
        holder = pw.CharField(max_length=300)
        acquired_at = pw.DoubleField()
        expires_at = pw.DoubleField()

        class Meta:
            table_name = "djobs_leases"

    class ScheduleRow(Base):
        name = pw.CharField(max_length=255, primary_key=True)
        job = pw.CharField(max_length=255)
        spec = pw.CharField(max_length=255)
        args = pw.TextField(default="null")
        queue = pw.CharField(max_length=255, default="default")
        priority = pw.IntegerField(default=0)
        retries = pw.IntegerField(default=3)
        paused = pw.IntegerField(default=0)
        paused_at = pw.DoubleField(null=True)
        pause_reason = pw.TextField(null=True)
        last_fire = pw.DoubleField(null=True)
        next_fire = pw.DoubleField(null=True)
        created_at = pw.DoubleField()
        # "config" when a config file declares it (and deletes it once the file no longer does), else "api".
        source = pw.CharField(max_length=16, default="api", constraints=[pw.SQL("DEFAULT 'api'")])

        class Meta:
            table_name = "djobs_schedules"

    class EventRow(Base):
        id = pw.BigAutoField()
        ts = pw.DoubleField(index=True)
        kind = pw.CharField(max_length=300)
        job_id = pw.CharField(max_length=36, null=True, index=True)
        queue = pw.CharField(max_length=255, null=True)
        worker_id = pw.CharField(max_length=300, null=True)
        data = pw.TextField(null=True)

        class Meta:
            table_name = "djobs_events"

    class Meta(Base):
        key = pw.CharField(max_length=64, primary_key=True)
        value = pw.TextField()

        class Meta:
            table_name = "djobs_meta"

    return SimpleNamespace(
        Job=Job,
        Checkpoint=Checkpoint,
        FanOut=FanOut,
        QueueRow=QueueRow,
        Worker=Worker,
        ScheduleRow=ScheduleRow,
        EventRow=EventRow,
        Meta=Meta,
        JobType=JobType,
        Signal=Signal,
        KeyBucket=KeyBucket,
        Lease=Lease,
        all=[Job, Checkpoint, FanOut, QueueRow, Worker, ScheduleRow, EventRow, Meta, JobType, Signal, KeyBucket, Lease],
    )


#: The partial indexes over statuses: (PostgreSQL's name, SQLite's name). SQLite's say their statuses as ORed
#: comparisons (`status_is`, which says why); PostgreSQL's keep the IN lists they were built with: it evaluates
#: those as cheaply and proves them from the same ORs in the queries, so rebuilding its indexes on upgrade
#: (the jobs table locked against writes while every finished job is indexed again) would buy nothing.
STATUS_INDEXES = {
    "claim": ("djobs_jobs_claim2", "djobs_jobs_claim3"),
    "unique": ("djobs_jobs_unique_active", "djobs_jobs_unique_held"),
    "keyed": ("djobs_jobs_keyed", "djobs_jobs_keyed2"),
    "finished": ("djobs_jobs_finished2", "djobs_jobs_finished3"),
}


def extra_ddl(is_pg: bool) -> list[str]:
    """Indexes Peewee's model DDL cannot express portably (partial indexes) and the wake-up trigger."""
    ix = {kind: names[0] if is_pg else names[1] for kind, names in STATUS_INDEXES.items()}
    if is_pg:
        claimable = f"status IN {sql_list(CLAIMABLE_VALUES)}"
        finished, held = f"status IN {TERMINAL}", f"status NOT IN {TERMINAL}"
    else:
        claimable, finished, held = IS_CLAIMABLE, FINISHED, f"NOT {FINISHED}"
    stmts = [
        # The claim's index: only claimable rows, in claim order.
        f"CREATE INDEX IF NOT EXISTS {ix['claim']} ON djobs_jobs (queue, priority DESC, run_at, id) WHERE {claimable}",
        "DROP INDEX IF EXISTS djobs_jobs_claim",
        # A unique key is held only while the job is not terminal: race-safe, no check-then-insert.
        f"CREATE UNIQUE INDEX IF NOT EXISTS {ix['unique']} ON djobs_jobs (unique_key) "
        f"WHERE unique_key IS NOT NULL AND {held}",
        # Idempotency windows: keys held past the end of their job.
        "CREATE INDEX IF NOT EXISTS djobs_jobs_unique_window ON djobs_jobs (unique_key, unique_until) "
        "WHERE unique_until IS NOT NULL",
        "CREATE INDEX IF NOT EXISTS djobs_jobs_running ON djobs_jobs (locked_by) WHERE status = 'running'",
        # Fleet-wide `running` and `key_running` caps count these.
        "CREATE INDEX IF NOT EXISTS djobs_jobs_running_queue ON djobs_jobs (queue, job_key) WHERE status = 'running'",
        # Per-key limits pick each key's next jobs; jobs without a key cost this index nothing.
        f"CREATE INDEX IF NOT EXISTS {ix['keyed']} ON djobs_jobs (queue, job_key, priority DESC, run_at, id) "
        f"WHERE job_key IS NOT NULL AND {claimable}",
        # Dead letters, newest first; retention of finished jobs; the last minute's throughput by queue (the
        # dashboard reads it every second). One index for the three: each completion maintains one, not two.
        f"CREATE INDEX IF NOT EXISTS {ix['finished']} ON djobs_jobs (status, completed_at, queue) WHERE {finished}",
        "DROP INDEX IF EXISTS djobs_jobs_finished",
        "DROP INDEX IF EXISTS djobs_jobs_done",
        # Listings are newest first by id (ids are time-ordered): no index on created_at to keep up per insert.
        "DROP INDEX IF EXISTS djobs_jobs_created",
        # Counts by queue and status (inspect, the dashboard, metrics): pending and running jobs are counted
        # from the claim's and the running jobs' indexes, the rest from this one. Over every job it cost each
        # insert and each claim an index entry more; without the two statuses every job passes through, a job
        # enters it once, when it finishes.
        f"CREATE INDEX IF NOT EXISTS djobs_jobs_queue_status2 ON djobs_jobs (queue, status) WHERE {NOT_HOT}",
        "DROP INDEX IF EXISTS djobs_jobs_queue_status",
        # Most jobs have no parent: partial indexes cost them nothing on every status change.
        "CREATE INDEX IF NOT EXISTS djobs_jobs_parent ON djobs_jobs (parent_id) WHERE parent_id IS NOT NULL",
        "CREATE INDEX IF NOT EXISTS djobs_jobs_fanout ON djobs_jobs (fanout_id) WHERE fanout_id IS NOT NULL",
        # Paused jobs, in the order they were paused (`djobs.paused_jobs`); the others cost it nothing.
        "CREATE INDEX IF NOT EXISTS djobs_jobs_paused ON djobs_jobs (paused_at) WHERE status = 'paused'",
        # Undecided fan-outs, by deadline: the leader looks for those past their deadline or with every
        # sub-job finished every few seconds; decided ones (nearly all of them) cost this index nothing.
        "CREATE INDEX IF NOT EXISTS djobs_fanouts_open ON djobs_fanouts (timeout_at) WHERE decided IS NULL",
    ]
    if not is_pg:  # the versions that said IN, once the new ones exist
        stmts += [f"DROP INDEX IF EXISTS {names[0]}" for names in STATUS_INDEXES.values()]
    if is_pg:
        stmts += [
            "CREATE OR REPLACE FUNCTION djobs_notify_wake() RETURNS trigger AS $$ "
            "BEGIN PERFORM pg_notify('djobs_wake', current_schema()); RETURN NULL; END $$ LANGUAGE plpgsql",
            "DROP TRIGGER IF EXISTS djobs_jobs_wake ON djobs_jobs",
            "CREATE TRIGGER djobs_jobs_wake AFTER INSERT ON djobs_jobs "
            "FOR EACH STATEMENT EXECUTE FUNCTION djobs_notify_wake()",
            "CREATE OR REPLACE FUNCTION djobs_notify_event() RETURNS trigger AS $$ "
            "BEGIN PERFORM pg_notify('djobs_event', current_schema()); RETURN NULL; END $$ LANGUAGE plpgsql",
            "DROP TRIGGER IF EXISTS djobs_events_wake ON djobs_events",
            "CREATE TRIGGER djobs_events_wake AFTER INSERT ON djobs_events "
            "FOR EACH STATEMENT EXECUTE FUNCTION djobs_notify_event()",
        ]
    return stmts


def create_schema(db: pw.Database, models: SimpleNamespace, is_pg: bool, schema: str | None) -> None:
    """Create or migrate the schema once; concurrent starters serialise on a lock."""
    with db.atomic():
        if is_pg:
            db.execute_sql("SELECT pg_advisory_xact_lock(727274)")
        version = _version(db, models, is_pg)
        if version > SCHEMA_VERSION:
            raise RuntimeError(
                f"this database has djobs schema version {version}; this djobs knows up to {SCHEMA_VERSION}: upgrade djobs"
            )
        if version == SCHEMA_VERSION:
            return
        db.create_tables(models.all, safe=True)
        if version:
            _add_missing_columns(db, models, is_pg)
            if is_pg:
                _widen_varchars(db, models)
        for stmt in extra_ddl(is_pg):
            db.execute_sql(stmt)
        models.Meta.insert(key="schema_version", value=str(SCHEMA_VERSION)).on_conflict(
            conflict_target=[models.Meta.key], update={models.Meta.value: str(SCHEMA_VERSION)}
        ).execute()


def _add_missing_columns(db: pw.Database, models: SimpleNamespace, is_pg: bool) -> None:
    """Columns a newer djobs added to an existing table, with their defaults (additive only)."""
    for model in models.all:
        table = model._meta.table_name
        if is_pg:
            rows = db.execute_sql(
                "SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema() "
                "AND table_name = %s",
                (table,),
            ).fetchall()
        else:
            rows = [(r[1],) for r in db.execute_sql(f'PRAGMA table_info("{table}")').fetchall()]
        have = {r[0] for r in rows}
        for field in model._meta.sorted_fields:
            if field.column_name in have:
                continue
            ddl = db.get_sql_context().sql(field.ddl(db.get_sql_context())).query()[0]
            db.execute_sql(f'ALTER TABLE "{table}" ADD COLUMN {ddl}')


def _widen_varchars(db: pw.Database, models: SimpleNamespace) -> None:
    """Text columns whose limit a newer djobs raised (names are 1..255 characters on both backends).
    Widening a varchar does not rewrite the table on PostgreSQL."""
    for model in models.all:
        for field in model._meta.sorted_fields:
            if isinstance(field, pw.CharField):
                db.execute_sql(
                    f'ALTER TABLE "{model._meta.table_name}" ALTER COLUMN "{field.column_name}" '
                    f"TYPE VARCHAR({field.max_length})"
                )


def _version(db: pw.Database, models: SimpleNamespace, is_pg: bool) -> int:
    # Peewee's table_exists() looks in "public" only; ask the server what the search_path resolves.
    probe = (
        "SELECT to_regclass('djobs_meta') IS NOT NULL"
        if is_pg
        else "SELECT count(*) FROM sqlite_master WHERE type='table' AND name='djobs_meta'"
    )
    if not db.execute_sql(probe).fetchone()[0]:
        return 0
    row: Any = models.Meta.get_or_none(models.Meta.key == "schema_version")
    return int(row.value) if row else 0
