"""The schema, as Peewee models bound to one database, and its versioned creation.

Models are built per storage (`make_models(db)`) so several stores can live in one process. They define the
tables and serve the non-hot queries; the hot path uses the prebuilt SQL in `sql.py`. Times are epoch
seconds (double precision) so one SQL text serves both dialects.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import peewee as pw

SCHEMA_VERSION = 1
TERMINAL_SQL = "('completed','failed','cancelled')"


def make_models(db: pw.Database) -> SimpleNamespace:
    class Base(pw.Model):
        class Meta:
            database = db
            legacy_table_names = False

    class Job(Base):
        id = pw.CharField(max_length=36, primary_key=True)
        type = pw.CharField(max_length=200)
        queue = pw.CharField(max_length=200, default="default")
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
        locked_by = pw.CharField(max_length=64, null=True)
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

        class Meta:
            table_name = "djobs_jobs"

    class Checkpoint(Base):
        job_id = pw.CharField(max_length=36)
        key = pw.CharField(max_length=255)
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
        call_key = pw.CharField(max_length=255)
        strategy = pw.CharField(max_length=32)
        total = pw.IntegerField()
        timeout_at = pw.DoubleField(null=True)
        cancel_on_parent_failure = pw.IntegerField(default=0)
        decided = pw.CharField(max_length=16, null=True)
        created_at = pw.DoubleField()

        class Meta:
            table_name = "djobs_fanouts"

    class QueueRow(Base):
        name = pw.CharField(max_length=200, primary_key=True)
        paused = pw.IntegerField(default=0)
        paused_at = pw.DoubleField(null=True)
        pause_reason = pw.TextField(null=True)

        class Meta:
            table_name = "djobs_queues"

    class Worker(Base):
        id = pw.CharField(max_length=64, primary_key=True)
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

    class ScheduleRow(Base):
        name = pw.CharField(max_length=200, primary_key=True)
        job = pw.CharField(max_length=200)
        spec = pw.CharField(max_length=255)
        args = pw.TextField(default="null")
        queue = pw.CharField(max_length=200, default="default")
        priority = pw.IntegerField(default=0)
        retries = pw.IntegerField(default=3)
        paused = pw.IntegerField(default=0)
        paused_at = pw.DoubleField(null=True)
        pause_reason = pw.TextField(null=True)
        last_fire = pw.DoubleField(null=True)
        next_fire = pw.DoubleField(null=True)
        created_at = pw.DoubleField()

        class Meta:
            table_name = "djobs_schedules"

    class EventRow(Base):
        id = pw.BigAutoField()
        ts = pw.DoubleField(index=True)
        kind = pw.CharField(max_length=64)
        job_id = pw.CharField(max_length=36, null=True, index=True)
        queue = pw.CharField(max_length=200, null=True)
        worker_id = pw.CharField(max_length=64, null=True)
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
        all=[Job, Checkpoint, FanOut, QueueRow, Worker, ScheduleRow, EventRow, Meta],
    )


def extra_ddl(is_pg: bool) -> list[str]:
    """Indexes Peewee's model DDL cannot express portably (partial indexes) and the wake-up trigger."""
    stmts = [
        # The claim's index: only runnable rows, in claim order.
        "CREATE INDEX IF NOT EXISTS djobs_jobs_claim ON djobs_jobs (queue, priority DESC, run_at, id) "
        "WHERE status IN ('pending','retrying')",
        # A unique key is held only while the job is not terminal: race-safe, no check-then-insert.
        "CREATE UNIQUE INDEX IF NOT EXISTS djobs_jobs_unique_active ON djobs_jobs (unique_key) "
        f"WHERE unique_key IS NOT NULL AND status NOT IN {TERMINAL_SQL}",
        "CREATE INDEX IF NOT EXISTS djobs_jobs_running ON djobs_jobs (locked_by) WHERE status = 'running'",
        "CREATE INDEX IF NOT EXISTS djobs_jobs_created ON djobs_jobs (created_at)",
        # Counts by queue and status (inspect, the dashboard) read this index alone.
        "CREATE INDEX IF NOT EXISTS djobs_jobs_queue_status ON djobs_jobs (queue, status)",
        # Most jobs have no parent: partial indexes cost them nothing on every status change.
        "CREATE INDEX IF NOT EXISTS djobs_jobs_parent ON djobs_jobs (parent_id) WHERE parent_id IS NOT NULL",
        "CREATE INDEX IF NOT EXISTS djobs_jobs_fanout ON djobs_jobs (fanout_id) WHERE fanout_id IS NOT NULL",
        # Throughput of the last minute, read by the dashboard every second.
        "CREATE INDEX IF NOT EXISTS djobs_jobs_done ON djobs_jobs (completed_at, queue) WHERE status = 'completed'",
    ]
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
        if _version(db, models, is_pg) >= SCHEMA_VERSION:
            return
        db.create_tables(models.all, safe=True)
        for stmt in extra_ddl(is_pg):
            db.execute_sql(stmt)
        models.Meta.insert(key="schema_version", value=str(SCHEMA_VERSION)).on_conflict(
            conflict_target=[models.Meta.key], update={models.Meta.value: str(SCHEMA_VERSION)}
        ).execute()


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
