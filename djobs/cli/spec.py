"""The `djobs` command tree as plain data (generated from the Typer app by djobs/cli/specgen.py: run
scripts/gen-docs, do not edit). Used by djobs/cli/fast.py, which must not import typer."""

from typing import Any

# fmt: off
COMMANDS: dict[str, dict[str, Any]] = {
    '': {
        'options': [
            {'dest': 'config', 'complete': 'none', 'names': ['--config'], 'secondary': [], 'help': 'Config file [default: ./djobs.toml, then $XDG_CONFIG_HOME/djobs/djobs.toml].', 'takes_value': True, 'nargs': 1, 'multiple': False, 'hidden': False, 'envvar': 'DJOBS_CONFIG', 'eager': False, 'required': False, 'min': None, 'max': None, 'type': 'str', 'default': None},
            {'dest': 'database', 'complete': 'none', 'names': ['--database'], 'secondary': [], 'help': 'Database URL, overrides the config [default: sqlite:///djobs.db].', 'takes_value': True, 'nargs': 1, 'multiple': False, 'hidden': False, 'envvar': 'DJOBS_DATABASE_URL', 'eager': False, 'required': False, 'min': None, 'max': None, 'type': 'str', 'default': None},
            {'dest': 'json_', 'complete': 'none', 'names': ['--json'], 'secondary': [], 'help': 'Print one JSON document on stdout (for scripts).', 'takes_value': False, 'nargs': 1, 'multiple': False, 'hidden': False, 'envvar': 'DJOBS_JSON', 'eager': False, 'required': False, 'min': None, 'max': None, 'type': 'bool', 'default': False},
            {'dest': 'debug', 'complete': 'none', 'names': ['--debug'], 'secondary': [], 'help': 'Show tracebacks on errors.', 'takes_value': False, 'nargs': 1, 'multiple': False, 'hidden': False, 'envvar': 'DJOBS_DEBUG', 'eager': False, 'required': False, 'min': None, 'max': None, 'type': 'bool', 'default': False},
            {'dest': 'wide', 'complete': 'none', 'names': ['--wide'], 'secondary': [], 'help': "Never cut table cells to the terminal's width (always so when stdout is not a terminal).", 'takes_value': False, 'nargs': 1, 'multiple': False, 'hidden': False, 'envvar': 'DJOBS_WIDE', 'eager': False, 'required': False, 'min': None, 'max': None, 'type': 'bool', 'default': False},
            {'dest': 'version', 'complete': 'none', 'names': ['--version'], 'secondary': [], 'help': 'Print the version and exit.', 'takes_value': False, 'nargs': 1, 'multiple': False, 'hidden': False, 'envvar': None, 'eager': True, 'required': False, 'min': None, 'max': None, 'type': 'bool', 'default': False},
            {'dest': 'help', 'complete': 'none', 'names': ['--help'], 'secondary': [], 'help': 'Show this message and exit.', 'takes_value': False, 'nargs': 1, 'multiple': False, 'hidden': False, 'envvar': None, 'eager': True, 'required': False},
        ],
        'arguments': [
        ],
        'commands': [
            {'name': 'init', 'help': 'Write a starter djobs.toml.', 'hidden': False},
            {'name': 'enqueue', 'help': 'Enqueue a job and print its id.', 'hidden': False},
            {'name': 'cancel', 'help': 'Cancel a job (and its sub-jobs).', 'hidden': False},
            {'name': 'retry', 'help': 'Requeue a failed or cancelled job.', 'hidden': False},
            {'name': 'purge', 'help': 'Delete finished jobs older than a duration.', 'hidden': False},
            {'name': 'signal', 'help': 'Send a signal to a job.', 'hidden': False},
            {'name': 'worker', 'help': 'Run a worker until SIGTERM/SIGINT.', 'hidden': False},
            {'name': 'inspect', 'help': 'Show an overview, or one job in detail.', 'hidden': False},
            {'name': 'jobs', 'help': 'List jobs, newest first.', 'hidden': False},
            {'name': 'why', 'help': 'Explain in words why a job is not running...', 'hidden': False},
            {'name': 'workers', 'help': 'List live workers.', 'hidden': False},
            {'name': 'events', 'help': 'Print lifecycle events from the database.', 'hidden': False},
            {'name': 'tui', 'help': 'Open the live dashboard.', 'hidden': False},
            {'name': 'ui', 'help': 'Serve the web dashboard until Ctrl-C (or...', 'hidden': False},
            {'name': 'health', 'help': 'Exit 0 when healthy, 1 (one line per...', 'hidden': False},
            {'name': 'selftest', 'help': 'Prove the guarantees here: run real...', 'hidden': False},
            {'name': 'bench', 'help': 'Measure djobs on this machine beside raw...', 'hidden': False},
            {'name': 'config', 'help': 'Check or show the config file.', 'hidden': False},
            {'name': 'pause', 'help': 'Pause a job, queue, worker or schedule.', 'hidden': False},
            {'name': 'resume', 'help': 'Resume a job, queue, worker or schedule.', 'hidden': False},
            {'name': 'schedules', 'help': 'List schedules; `schedules rm NAME`...', 'hidden': False},
            {'name': 'completion', 'help': 'Print or install shell completion (bash,...', 'hidden': False},
            {'name': 'limits', 'help': 'Show fleet-wide limits (`limits QUEUE` for...', 'hidden': False},
            {'name': 'dlq', 'help': 'Failed jobs with their last error; `dlq...', 'hidden': False},
        ],
    },
    'init': {
        'options': [
            {'dest': 'database', 'complete': 'none', 'names': ['--database'], 'secondary': [], 'help': 'Database URL to write [default: sqlite:///djobs.db].', 'takes_value': True, 'nargs': 1, 'multiple': False, 'hidden': False, 'envvar': 'DJOBS_DATABASE_URL', 'eager': False, 'required': False, 'min': None, 'max': None, 'type': 'str', 'default': None},
            {'dest': 'force', 'complete': 'none', 'names': ['--force'], 'secondary': [], 'help': 'Overwrite existing files.', 'takes_value': False, 'nargs': 1, 'multiple': False, 'hidden': False, 'envvar': 'DJOBS_INIT_FORCE', 'eager': False, 'required': False, 'min': None, 'max': None, 'type': 'bool', 'default': False},
            {'dest': 'example', 'complete': 'none', 'names': ['--example'], 'secondary': [], 'help': 'Start from an example instead: etl (an annotated config, its handlers in examples/etl.py, and systemd and cron examples).', 'takes_value': True, 'nargs': 1, 'multiple': False, 'hidden': False, 'envvar': 'DJOBS_INIT_EXAMPLE', 'eager': False, 'required': False, 'min': None, 'max': None, 'type': 'str', 'default': None},
            {'dest': 'help', 'complete': 'none', 'names': ['--help'], 'secondary': [], 'help': 'Show this message and exit.', 'takes_value': False, 'nargs': 1, 'multiple': False, 'hidden': False, 'envvar': None, 'eager': True, 'required': False},
        ],
        'arguments': [
        ],
    },
    'enqueue': {
        'options': [
            {'dest': 'args', 'complete': 'none', 'names': ['--args'], 'secondary': [], 'help': 'Job args as JSON, from a file (@FILE) or stdin (-) [default: null, no args].', 'takes_value': True, 'nargs': 1, 'multiple': False, 'hidden': False, 'envvar': 'DJOBS_ENQUEUE_ARGS', 'eager': False, 'required': False, 'min': None, 'max': None, 'type': 'str', 'default': None},
            {'dest': 'queue_name', 'complete': 'provider:queue_names', 'names': ['--queue', '-q'], 'secondary': [], 'help': "Queue [default: the type's].", 'takes_value': True, 'nargs': 1, 'multiple': False, 'hidden': False, 'envvar': 'DJOBS_ENQUEUE_QUEUE', 'eager': False, 'required': False, 'min': None, 'max': None, 'type': 'str', 'default': None},
            {'dest': 'priority', 'complete': 'none', 'names': ['--priority', '-p'], 'secondary': [], 'help': 'Higher runs first.', 'takes_value': True, 'nargs': 1, 'multiple': False, 'hidden': False, 'envvar': 'DJOBS_ENQUEUE_PRIORITY', 'eager': False, 'required': False, 'min': -2147483648, 'max': 2147483647, 'type': 'int', 'default': None},
            {'dest': 'retries', 'complete': 'none', 'names': ['--retries'], 'secondary': [], 'help': 'Retries after the first attempt.', 'takes_value': True, 'nargs': 1, 'multiple': False, 'hidden': False, 'envvar': 'DJOBS_ENQUEUE_RETRIES', 'eager': False, 'required': False, 'min': 0, 'max': 2147483647, 'type': 'int', 'default': None},
            {'dest': 'delay', 'complete': 'none', 'names': ['--delay'], 'secondary': [], 'help': 'Run after 30s, 5m, 2h, ...', 'takes_value': True, 'nargs': 1, 'multiple': False, 'hidden': False, 'envvar': 'DJOBS_ENQUEUE_DELAY', 'eager': False, 'required': False, 'min': None, 'max': None, 'type': 'str', 'default': None},
            {'dest': 'at', 'complete': 'none', 'names': ['--at'], 'secondary': [], 'help': 'Run at this time (naive = UTC).', 'takes_value': True, 'nargs': 1, 'multiple': False, 'hidden': False, 'envvar': 'DJOBS_ENQUEUE_AT', 'eager': False, 'required': False, 'min': None, 'max': None, 'type': 'str', 'default': None},
            {'dest': 'unique', 'complete': 'none', 'names': ['--unique'], 'secondary': [], 'help': 'At most one unfinished job per key.', 'takes_value': True, 'nargs': 1, 'multiple': False, 'hidden': False, 'envvar': 'DJOBS_ENQUEUE_UNIQUE', 'eager': False, 'required': False, 'min': None, 'max': None, 'type': 'str', 'default': None},
            {'dest': 'unique_for', 'complete': 'none', 'names': ['--unique-for'], 'secondary': [], 'help': 'With --unique: hold the key this long from enqueue (24h), even after the job finished.', 'takes_value': True, 'nargs': 1, 'multiple': False, 'hidden': False, 'envvar': 'DJOBS_ENQUEUE_UNIQUE_FOR', 'eager': False, 'required': False, 'min': None, 'max': None, 'type': 'str', 'default': None},
            {'dest': 'if_exists', 'complete': 'choice', 'names': ['--if-exists'], 'secondary': [], 'help': 'With --unique: fail (exit 1), or skip / return (print the existing id, exit 0).', 'takes_value': True, 'nargs': 1, 'multiple': False, 'hidden': False, 'envvar': 'DJOBS_ENQUEUE_IF_EXISTS', 'eager': False, 'required': False, 'min': None, 'max': None, 'type': 'choice', 'choices': ['fail', 'skip', 'return'], 'default': 'fail'},
            {'dest': 'time_limit', 'complete': 'none', 'names': ['--time-limit'], 'secondary': [], 'help': "End an attempt still running after this (5m) [default: the type's].", 'takes_value': True, 'nargs': 1, 'multiple': False, 'hidden': False, 'envvar': 'DJOBS_ENQUEUE_TIME_LIMIT', 'eager': False, 'required': False, 'min': None, 'max': None, 'type': 'str', 'default': None},
            {'dest': 'key', 'complete': 'none', 'names': ['--key'], 'secondary': [], 'help': 'Group key for per-key limits (tenant:42).', 'takes_value': True, 'nargs': 1, 'multiple': False, 'hidden': False, 'envvar': 'DJOBS_ENQUEUE_KEY', 'eager': False, 'required': False, 'min': None, 'max': None, 'type': 'str', 'default': None},
            {'dest': 'meta', 'complete': 'none', 'names': ['--meta'], 'secondary': [], 'help': 'A metadata pair (repeatable), for filtering.', 'takes_value': True, 'nargs': 1, 'multiple': True, 'hidden': False, 'envvar': 'DJOBS_ENQUEUE_META', 'eager': False, 'required': False, 'min': None, 'max': None, 'type': 'str', 'default': None},
            {'dest': 'wait', 'complete': 'none', 'names': ['--wait'], 'secondary': [], 'help': 'Wait for the job and print its JSON result.', 'takes_value': False, 'nargs': 1, 'multiple': False, 'hidden': False, 'envvar': 'DJOBS_ENQUEUE_WAIT', 'eager': False, 'required': False, 'min': None, 'max': None, 'type': 'bool', 'default': False},
            {'dest': 'timeout', 'complete': 'none', 'names': ['--timeout'], 'secondary': [], 'help': 'With --wait: give up after S s.', 'takes_value': True, 'nargs': 1, 'multiple': False, 'hidden': False, 'envvar': 'DJOBS_ENQUEUE_TIMEOUT', 'eager': False, 'required': False, 'min': 0, 'max': None, 'type': 'float', 'default': None},
            {'dest': 'help', 'complete': 'none', 'names': ['--help'], 'secondary': [], 'help': 'Show this message and exit.', 'takes_value': False, 'nargs': 1, 'multiple': False, 'hidden': False, 'envvar': None, 'eager': True, 'required': False},
        ],
        'arguments': [
            {'dest': 'job_type', 'complete': 'provider:job_types', 'nargs': 1},
        ],
    },
    'cancel': {
        'options': [
            {'dest': 'help', 'complete': 'none', 'names': ['--help'], 'secondary': [], 'help': 'Show this message and exit.', 'takes_value': False, 'nargs': 1, 'multiple': False, 'hidden': False, 'envvar': None, 'eager': True, 'required': False},
        ],
        'arguments': [
            {'dest': 'job_id', 'complete': 'provider:unfinished_job', 'nargs': 1},
        ],
    },
    'retry': {
        'options': [
            {'dest': 'help', 'complete': 'none', 'names': ['--help'], 'secondary': [], 'help': 'Show this message and exit.', 'takes_value': False, 'nargs': 1, 'multiple': False, 'hidden': False, 'envvar': None, 'eager': True, 'required': False},
        ],
        'arguments': [
            {'dest': 'job_id', 'complete': 'provider:finished_badly', 'nargs': 1},
        ],
    },
    'purge': {
        'options': [
            {'dest': 'status', 'complete': 'choice', 'names': ['--status'], 'secondary': [], 'help': 'Only these statuses (repeatable) [default: all three].', 'takes_value': True, 'nargs': 1, 'multiple': True, 'hidden': False, 'envvar': 'DJOBS_PURGE_STATUS', 'eager': False, 'required': False, 'min': None, 'max': None, 'type': 'choice', 'choices': ['completed', 'failed', 'cancelled'], 'default': None},
            {'dest': 'older_than', 'complete': 'none', 'names': ['--older-than'], 'secondary': [], 'help': 'Finished before this long ago, e.g. 7d.', 'takes_value': True, 'nargs': 1, 'multiple': False, 'hidden': False, 'envvar': 'DJOBS_PURGE_OLDER_THAN', 'eager': False, 'required': True, 'min': None, 'max': None, 'type': 'str', 'default': None},
            {'dest': 'help', 'complete': 'none', 'names': ['--help'], 'secondary': [], 'help': 'Show this message and exit.', 'takes_value': False, 'nargs': 1, 'multiple': False, 'hidden': False, 'envvar': None, 'eager': True, 'required': False},
        ],
        'arguments': [
        ],
    },
    'signal': {
        'options': [
            {'dest': 'payload', 'complete': 'none', 'names': ['--payload'], 'secondary': [], 'help': 'The payload as JSON, from a file (@FILE) or stdin (-) [default: null].', 'takes_value': True, 'nargs': 1, 'multiple': False, 'hidden': False, 'envvar': 'DJOBS_SIGNAL_PAYLOAD', 'eager': False, 'required': False, 'min': None, 'max': None, 'type': 'str', 'default': None},
            {'dest': 'help', 'complete': 'none', 'names': ['--help'], 'secondary': [], 'help': 'Show this message and exit.', 'takes_value': False, 'nargs': 1, 'multiple': False, 'hidden': False, 'envvar': None, 'eager': True, 'required': False},
        ],
        'arguments': [
            {'dest': 'job_id', 'complete': 'provider:unfinished_job', 'nargs': 1},
            {'dest': 'name', 'complete': 'none', 'nargs': 1},
        ],
    },
    'worker': {
        'options': [
            {'dest': 'queue_specs', 'complete': 'provider:queue_names', 'names': ['--queue', '-q'], 'secondary': [], 'help': "Serve this queue (repeatable) [default: the config's [queues.*], else default].", 'takes_value': True, 'nargs': 1, 'multiple': True, 'hidden': False, 'envvar': 'DJOBS_WORKER_QUEUE', 'eager': False, 'required': False, 'min': None, 'max': None, 'type': 'str', 'default': None},
            {'dest': 'concurrency', 'complete': 'none', 'names': ['--concurrency', '-c'], 'secondary': [], 'help': 'Concurrency for queues without :N (overrides the config) [default: 10].', 'takes_value': True, 'nargs': 1, 'multiple': False, 'hidden': False, 'envvar': 'DJOBS_WORKER_CONCURRENCY', 'eager': False, 'required': False, 'min': 1, 'max': 10000, 'type': 'int', 'default': None},
            {'dest': 'scheduler', 'complete': 'none', 'names': ['--scheduler'], 'secondary': ['--no-scheduler'], 'help': "Also fire schedules [default: the config's [worker] scheduler, else on].", 'takes_value': False, 'nargs': 1, 'multiple': False, 'hidden': False, 'envvar': 'DJOBS_WORKER_SCHEDULER', 'eager': False, 'required': False, 'min': None, 'max': None, 'type': 'bool', 'default': None},
            {'dest': 'reload', 'complete': 'none', 'names': ['--reload'], 'secondary': [], 'help': 'Restart when handler code changes (development).', 'takes_value': False, 'nargs': 1, 'multiple': False, 'hidden': False, 'envvar': 'DJOBS_WORKER_RELOAD', 'eager': False, 'required': False, 'min': None, 'max': None, 'type': 'bool', 'default': False},
            {'dest': 'burst', 'complete': 'none', 'names': ['--burst'], 'secondary': [], 'help': 'Exit once no runnable work is left.', 'takes_value': False, 'nargs': 1, 'multiple': False, 'hidden': False, 'envvar': 'DJOBS_WORKER_BURST', 'eager': False, 'required': False, 'min': None, 'max': None, 'type': 'bool', 'default': False},
            {'dest': 'drain_timeout', 'complete': 'none', 'names': ['--drain-timeout'], 'secondary': [], 'help': 'On SIGTERM/SIGINT, let running jobs finish this long [default: [worker] drain_timeout, else 30s].', 'takes_value': True, 'nargs': 1, 'multiple': False, 'hidden': False, 'envvar': 'DJOBS_WORKER_DRAIN_TIMEOUT', 'eager': False, 'required': False, 'min': None, 'max': None, 'type': 'str', 'default': None},
            {'dest': 'stale_after', 'complete': 'none', 'names': ['--stale-after'], 'secondary': [], 'help': 'Requeue jobs of workers silent this long [default: [worker] stale_after, else 30s].', 'takes_value': True, 'nargs': 1, 'multiple': False, 'hidden': False, 'envvar': 'DJOBS_WORKER_STALE_AFTER', 'eager': False, 'required': False, 'min': None, 'max': None, 'type': 'str', 'default': None},
            {'dest': 'metrics_port', 'complete': 'none', 'names': ['--metrics-port'], 'secondary': [], 'help': 'Serve Prometheus /metrics, /healthz and /readyz on this port (loopback; HOST:PORT, e.g. 0.0.0.0:9100, to listen elsewhere).', 'takes_value': True, 'nargs': 1, 'multiple': False, 'hidden': False, 'envvar': 'DJOBS_WORKER_METRICS_PORT', 'eager': False, 'required': False, 'min': None, 'max': None, 'type': 'str', 'default': None},
            {'dest': 'help', 'complete': 'none', 'names': ['--help'], 'secondary': [], 'help': 'Show this message and exit.', 'takes_value': False, 'nargs': 1, 'multiple': False, 'hidden': False, 'envvar': None, 'eager': True, 'required': False},
        ],
        'arguments': [
        ],
    },
    'inspect': {
        'options': [
            {'dest': 'help', 'complete': 'none', 'names': ['--help'], 'secondary': [], 'help': 'Show this message and exit.', 'takes_value': False, 'nargs': 1, 'multiple': False, 'hidden': False, 'envvar': None, 'eager': True, 'required': False},
        ],
        'arguments': [
            {'dest': 'job_id', 'complete': 'provider:any_job', 'nargs': 1},
        ],
    },
    'jobs': {
        'options': [
            {'dest': 'status', 'complete': 'choice', 'names': ['--status', '-s'], 'secondary': [], 'help': 'Only this status.', 'takes_value': True, 'nargs': 1, 'multiple': False, 'hidden': False, 'envvar': 'DJOBS_JOBS_STATUS', 'eager': False, 'required': False, 'min': None, 'max': None, 'type': 'choice', 'choices': ['pending', 'running', 'completed', 'failed', 'retrying', 'waiting', 'cancelled', 'paused'], 'default': None},
            {'dest': 'queue_name', 'complete': 'provider:queue_names', 'names': ['--queue', '-q'], 'secondary': [], 'help': 'Only this queue.', 'takes_value': True, 'nargs': 1, 'multiple': False, 'hidden': False, 'envvar': 'DJOBS_JOBS_QUEUE', 'eager': False, 'required': False, 'min': None, 'max': None, 'type': 'str', 'default': None},
            {'dest': 'job_type', 'complete': 'provider:job_types', 'names': ['--type', '-t'], 'secondary': [], 'help': 'Only this type.', 'takes_value': True, 'nargs': 1, 'multiple': False, 'hidden': False, 'envvar': 'DJOBS_JOBS_TYPE', 'eager': False, 'required': False, 'min': None, 'max': None, 'type': 'str', 'default': None},
            {'dest': 'limit', 'complete': 'none', 'names': ['--limit', '-n'], 'secondary': [], 'help': 'At most N jobs.', 'takes_value': True, 'nargs': 1, 'multiple': False, 'hidden': False, 'envvar': 'DJOBS_JOBS_LIMIT', 'eager': False, 'required': False, 'min': 1, 'max': 100000, 'type': 'int', 'default': 50},
            {'dest': 'help', 'complete': 'none', 'names': ['--help'], 'secondary': [], 'help': 'Show this message and exit.', 'takes_value': False, 'nargs': 1, 'multiple': False, 'hidden': False, 'envvar': None, 'eager': True, 'required': False},
        ],
        'arguments': [
        ],
    },
    'why': {
        'options': [
            {'dest': 'help', 'complete': 'none', 'names': ['--help'], 'secondary': [], 'help': 'Show this message and exit.', 'takes_value': False, 'nargs': 1, 'multiple': False, 'hidden': False, 'envvar': None, 'eager': True, 'required': False},
        ],
        'arguments': [
            {'dest': 'job_id', 'complete': 'provider:any_job', 'nargs': 1},
        ],
    },
    'workers': {
        'options': [
            {'dest': 'include_dead', 'complete': 'none', 'names': ['--all', '-a'], 'secondary': [], 'help': 'Include workers that stopped heartbeating.', 'takes_value': False, 'nargs': 1, 'multiple': False, 'hidden': False, 'envvar': 'DJOBS_WORKERS_ALL', 'eager': False, 'required': False, 'min': None, 'max': None, 'type': 'bool', 'default': False},
            {'dest': 'help', 'complete': 'none', 'names': ['--help'], 'secondary': [], 'help': 'Show this message and exit.', 'takes_value': False, 'nargs': 1, 'multiple': False, 'hidden': False, 'envvar': None, 'eager': True, 'required': False},
        ],
        'arguments': [
        ],
    },
    'events': {
        'options': [
            {'dest': 'follow', 'complete': 'none', 'names': ['--follow', '-f'], 'secondary': [], 'help': 'Tail new events live.', 'takes_value': False, 'nargs': 1, 'multiple': False, 'hidden': False, 'envvar': 'DJOBS_EVENTS_FOLLOW', 'eager': False, 'required': False, 'min': None, 'max': None, 'type': 'bool', 'default': False},
            {'dest': 'job_id', 'complete': 'provider:any_job', 'names': ['--job'], 'secondary': [], 'help': 'Only this job.', 'takes_value': True, 'nargs': 1, 'multiple': False, 'hidden': False, 'envvar': 'DJOBS_EVENTS_JOB', 'eager': False, 'required': False, 'min': None, 'max': None, 'type': 'str', 'default': None},
            {'dest': 'queue_name', 'complete': 'provider:queue_names', 'names': ['--queue', '-q'], 'secondary': [], 'help': 'Only this queue.', 'takes_value': True, 'nargs': 1, 'multiple': False, 'hidden': False, 'envvar': 'DJOBS_EVENTS_QUEUE', 'eager': False, 'required': False, 'min': None, 'max': None, 'type': 'str', 'default': None},
            {'dest': 'since', 'complete': 'none', 'names': ['--since'], 'secondary': [], 'help': 'From T: a duration ago (10m) or ISO 8601.', 'takes_value': True, 'nargs': 1, 'multiple': False, 'hidden': False, 'envvar': 'DJOBS_EVENTS_SINCE', 'eager': False, 'required': False, 'min': None, 'max': None, 'type': 'str', 'default': None},
            {'dest': 'help', 'complete': 'none', 'names': ['--help'], 'secondary': [], 'help': 'Show this message and exit.', 'takes_value': False, 'nargs': 1, 'multiple': False, 'hidden': False, 'envvar': None, 'eager': True, 'required': False},
        ],
        'arguments': [
        ],
    },
    'tui': {
        'options': [
            {'dest': 'help', 'complete': 'none', 'names': ['--help'], 'secondary': [], 'help': 'Show this message and exit.', 'takes_value': False, 'nargs': 1, 'multiple': False, 'hidden': False, 'envvar': None, 'eager': True, 'required': False},
        ],
        'arguments': [
        ],
    },
    'ui': {
        'options': [
            {'dest': 'host', 'complete': 'none', 'names': ['--host'], 'secondary': [], 'help': 'Address to listen on.', 'takes_value': True, 'nargs': 1, 'multiple': False, 'hidden': False, 'envvar': 'DJOBS_UI_HOST', 'eager': False, 'required': False, 'min': None, 'max': None, 'type': 'str', 'default': '127.0.0.1'},
            {'dest': 'port', 'complete': 'none', 'names': ['--port'], 'secondary': [], 'help': 'Port to listen on (0: any free).', 'takes_value': True, 'nargs': 1, 'multiple': False, 'hidden': False, 'envvar': 'DJOBS_UI_PORT', 'eager': False, 'required': False, 'min': 0, 'max': 65535, 'type': 'int', 'default': 8080},
            {'dest': 'token', 'complete': 'none', 'names': ['--token'], 'secondary': [], 'help': 'Token to require (at least 16 characters) [default: a random one, printed in the address].', 'takes_value': True, 'nargs': 1, 'multiple': False, 'hidden': False, 'envvar': 'DJOBS_UI_TOKEN', 'eager': False, 'required': False, 'min': None, 'max': None, 'type': 'str', 'default': None},
            {'dest': 'allow_host', 'complete': 'none', 'names': ['--allow-host'], 'secondary': [], 'help': 'Also answer to this Host name (repeatable; .example.com for a domain; * for any). Loopback names and the --host address are always allowed.', 'takes_value': True, 'nargs': 1, 'multiple': True, 'hidden': False, 'envvar': 'DJOBS_UI_ALLOW_HOST', 'eager': False, 'required': False, 'min': None, 'max': None, 'type': 'str', 'default': None},
            {'dest': 'trusted_proxy', 'complete': 'none', 'names': ['--trusted-proxy'], 'secondary': [], 'help': 'Address of a reverse proxy whose X-Forwarded-Host/-Proto to believe (from it only).', 'takes_value': True, 'nargs': 1, 'multiple': False, 'hidden': False, 'envvar': 'DJOBS_UI_TRUSTED_PROXY', 'eager': False, 'required': False, 'min': None, 'max': None, 'type': 'str', 'default': None},
            {'dest': 'no_token', 'complete': 'none', 'names': ['--no-token'], 'secondary': [], 'help': 'Serve without authentication (loopback addresses only, unless --insecure).', 'takes_value': False, 'nargs': 1, 'multiple': False, 'hidden': False, 'envvar': 'DJOBS_UI_NO_TOKEN', 'eager': False, 'required': False, 'min': None, 'max': None, 'type': 'bool', 'default': False},
            {'dest': 'insecure', 'complete': 'none', 'names': ['--insecure'], 'secondary': [], 'help': 'Allow --no-token on a non-loopback address: anyone who reaches the port can act on jobs.', 'takes_value': False, 'nargs': 1, 'multiple': False, 'hidden': False, 'envvar': 'DJOBS_UI_INSECURE', 'eager': False, 'required': False, 'min': None, 'max': None, 'type': 'bool', 'default': False},
            {'dest': 'help', 'complete': 'none', 'names': ['--help'], 'secondary': [], 'help': 'Show this message and exit.', 'takes_value': False, 'nargs': 1, 'multiple': False, 'hidden': False, 'envvar': None, 'eager': True, 'required': False},
        ],
        'arguments': [
        ],
    },
    'health': {
        'options': [
            {'dest': 'queues', 'complete': 'none', 'names': ['--queue', '-q'], 'secondary': [], 'help': 'Check only this queue (repeatable) [default: every queue].', 'takes_value': True, 'nargs': 1, 'multiple': True, 'hidden': False, 'envvar': 'DJOBS_HEALTH_QUEUE', 'eager': False, 'required': False, 'min': None, 'max': None, 'type': 'str', 'default': None},
            {'dest': 'max_lag', 'complete': 'none', 'names': ['--max-lag'], 'secondary': [], 'help': "Unhealthy when a queue's oldest due job has waited longer than this.", 'takes_value': True, 'nargs': 1, 'multiple': False, 'hidden': False, 'envvar': 'DJOBS_HEALTH_MAX_LAG', 'eager': False, 'required': False, 'min': None, 'max': None, 'type': 'str', 'default': '1m'},
            {'dest': 'help', 'complete': 'none', 'names': ['--help'], 'secondary': [], 'help': 'Show this message and exit.', 'takes_value': False, 'nargs': 1, 'multiple': False, 'hidden': False, 'envvar': None, 'eager': True, 'required': False},
        ],
        'arguments': [
        ],
    },
    'selftest': {
        'options': [
            {'dest': 'chaos', 'complete': 'none', 'names': ['--chaos'], 'secondary': ['--no-chaos'], 'help': 'kill -9 random workers at random moments (and restart them), plus one graceful stop; mix in misbehaving handlers (hangs past their time limit, database errors, unstorable results).', 'takes_value': False, 'nargs': 1, 'multiple': False, 'hidden': False, 'envvar': 'DJOBS_SELFTEST_CHAOS', 'eager': False, 'required': False, 'min': None, 'max': None, 'type': 'bool', 'default': False},
            {'dest': 'duration', 'complete': 'none', 'names': ['--duration'], 'secondary': [], 'help': 'How long to run the load (30s, 2m).', 'takes_value': True, 'nargs': 1, 'multiple': False, 'hidden': False, 'envvar': 'DJOBS_SELFTEST_DURATION', 'eager': False, 'required': False, 'min': None, 'max': None, 'type': 'str', 'default': '60s'},
            {'dest': 'workers', 'complete': 'none', 'names': ['--workers'], 'secondary': [], 'help': 'Worker processes.', 'takes_value': True, 'nargs': 1, 'multiple': False, 'hidden': False, 'envvar': 'DJOBS_SELFTEST_WORKERS', 'eager': False, 'required': False, 'min': 1, 'max': None, 'type': 'int', 'default': 3},
            {'dest': 'kills', 'complete': 'none', 'names': ['--kills'], 'secondary': [], 'help': 'kill -9 count with --chaos.', 'takes_value': True, 'nargs': 1, 'multiple': False, 'hidden': False, 'envvar': 'DJOBS_SELFTEST_KILLS', 'eager': False, 'required': False, 'min': 0, 'max': None, 'type': 'int', 'default': 20},
            {'dest': 'db_restart', 'complete': 'none', 'names': ['--db-restart'], 'secondary': [], 'help': 'PostgreSQL only: restart the server once mid-load (pg_ctlcluster ... restart).', 'takes_value': False, 'nargs': 1, 'multiple': False, 'hidden': False, 'envvar': 'DJOBS_SELFTEST_DB_RESTART', 'eager': False, 'required': False, 'min': None, 'max': None, 'type': 'bool', 'default': False},
            {'dest': 'seed', 'complete': 'none', 'names': ['--seed'], 'secondary': [], 'help': "Random seed, to replay a run's choices.", 'takes_value': True, 'nargs': 1, 'multiple': False, 'hidden': False, 'envvar': 'DJOBS_SELFTEST_SEED', 'eager': False, 'required': False, 'min': None, 'max': None, 'type': 'int', 'default': None},
            {'dest': 'keep', 'complete': 'none', 'names': ['--keep'], 'secondary': [], 'help': 'Keep the throwaway database and logs for inspection.', 'takes_value': False, 'nargs': 1, 'multiple': False, 'hidden': False, 'envvar': 'DJOBS_SELFTEST_KEEP', 'eager': False, 'required': False, 'min': None, 'max': None, 'type': 'bool', 'default': False},
            {'dest': 'help', 'complete': 'none', 'names': ['--help'], 'secondary': [], 'help': 'Show this message and exit.', 'takes_value': False, 'nargs': 1, 'multiple': False, 'hidden': False, 'envvar': None, 'eager': True, 'required': False},
        ],
        'arguments': [
        ],
    },
    'bench': {
        'options': [
            {'dest': 'backend', 'complete': 'none', 'names': ['--backend'], 'secondary': [], 'help': 'sqlite or postgres [default: SQLite, plus the configured database if it is PostgreSQL].', 'takes_value': True, 'nargs': 1, 'multiple': False, 'hidden': False, 'envvar': 'DJOBS_BENCH_BACKEND', 'eager': False, 'required': False, 'min': None, 'max': None, 'type': 'str', 'default': None},
            {'dest': 'jobs', 'complete': 'none', 'names': ['--jobs'], 'secondary': [], 'help': 'No-op jobs for the end-to-end runs.', 'takes_value': True, 'nargs': 1, 'multiple': False, 'hidden': False, 'envvar': 'DJOBS_BENCH_JOBS', 'eager': False, 'required': False, 'min': 1, 'max': None, 'type': 'int', 'default': 10000},
            {'dest': 'workers', 'complete': 'none', 'names': ['--workers'], 'secondary': [], 'help': 'End to end with 1 and with this many worker processes.', 'takes_value': True, 'nargs': 1, 'multiple': False, 'hidden': False, 'envvar': 'DJOBS_BENCH_WORKERS', 'eager': False, 'required': False, 'min': 1, 'max': None, 'type': 'int', 'default': 2},
            {'dest': 'samples', 'complete': 'none', 'names': ['--samples'], 'secondary': [], 'help': 'Dispatch-latency samples.', 'takes_value': True, 'nargs': 1, 'multiple': False, 'hidden': False, 'envvar': 'DJOBS_BENCH_SAMPLES', 'eager': False, 'required': False, 'min': 1, 'max': None, 'type': 'int', 'default': 100},
            {'dest': 'repeat', 'complete': 'none', 'names': ['--repeat'], 'secondary': [], 'help': 'Interleaved runs of each measure and its baseline; medians are shown.', 'takes_value': True, 'nargs': 1, 'multiple': False, 'hidden': False, 'envvar': 'DJOBS_BENCH_REPEAT', 'eager': False, 'required': False, 'min': 1, 'max': None, 'type': 'int', 'default': 1},
            {'dest': 'help', 'complete': 'none', 'names': ['--help'], 'secondary': [], 'help': 'Show this message and exit.', 'takes_value': False, 'nargs': 1, 'multiple': False, 'hidden': False, 'envvar': None, 'eager': True, 'required': False},
        ],
        'arguments': [
        ],
    },
    'config': {
        'options': [
            {'dest': 'help', 'complete': 'none', 'names': ['--help'], 'secondary': [], 'help': 'Show this message and exit.', 'takes_value': False, 'nargs': 1, 'multiple': False, 'hidden': False, 'envvar': None, 'eager': True, 'required': False},
        ],
        'arguments': [
        ],
        'commands': [
            {'name': 'check', 'help': 'Validate the config and import every...', 'hidden': False},
            {'name': 'apply', 'help': "Write the config's schedules, queue limits...", 'hidden': False},
            {'name': 'show', 'help': 'Print the resolved config (as TOML, or...', 'hidden': False},
        ],
    },
    'config check': {
        'options': [
            {'dest': 'help', 'complete': 'none', 'names': ['--help'], 'secondary': [], 'help': 'Show this message and exit.', 'takes_value': False, 'nargs': 1, 'multiple': False, 'hidden': False, 'envvar': None, 'eager': True, 'required': False},
        ],
        'arguments': [
        ],
    },
    'config apply': {
        'options': [
            {'dest': 'help', 'complete': 'none', 'names': ['--help'], 'secondary': [], 'help': 'Show this message and exit.', 'takes_value': False, 'nargs': 1, 'multiple': False, 'hidden': False, 'envvar': None, 'eager': True, 'required': False},
        ],
        'arguments': [
        ],
    },
    'config show': {
        'options': [
            {'dest': 'help', 'complete': 'none', 'names': ['--help'], 'secondary': [], 'help': 'Show this message and exit.', 'takes_value': False, 'nargs': 1, 'multiple': False, 'hidden': False, 'envvar': None, 'eager': True, 'required': False},
        ],
        'arguments': [
        ],
    },
    'pause': {
        'options': [
            {'dest': 'help', 'complete': 'none', 'names': ['--help'], 'secondary': [], 'help': 'Show this message and exit.', 'takes_value': False, 'nargs': 1, 'multiple': False, 'hidden': False, 'envvar': None, 'eager': True, 'required': False},
        ],
        'arguments': [
        ],
        'commands': [
            {'name': 'job', 'help': 'Pause a job.', 'hidden': False},
            {'name': 'queue', 'help': 'Pause a queue.', 'hidden': False},
            {'name': 'worker', 'help': 'Pause a worker.', 'hidden': False},
            {'name': 'schedule', 'help': 'Pause a schedule.', 'hidden': False},
        ],
    },
    'pause job': {
        'options': [
            {'dest': 'aggressive', 'complete': 'none', 'names': ['--aggressive'], 'secondary': [], 'help': 'Cancel running handlers now (default: let them finish).', 'takes_value': False, 'nargs': 1, 'multiple': False, 'hidden': False, 'envvar': 'DJOBS_PAUSE_AGGRESSIVE', 'eager': False, 'required': False, 'min': None, 'max': None, 'type': 'bool', 'default': False},
            {'dest': 'reason', 'complete': 'none', 'names': ['--reason'], 'secondary': [], 'help': 'Why (shown by inspect).', 'takes_value': True, 'nargs': 1, 'multiple': False, 'hidden': False, 'envvar': 'DJOBS_PAUSE_REASON', 'eager': False, 'required': False, 'min': None, 'max': None, 'type': 'str', 'default': None},
            {'dest': 'help', 'complete': 'none', 'names': ['--help'], 'secondary': [], 'help': 'Show this message and exit.', 'takes_value': False, 'nargs': 1, 'multiple': False, 'hidden': False, 'envvar': None, 'eager': True, 'required': False},
        ],
        'arguments': [
            {'dest': 'job_id', 'complete': 'provider:pausable_job', 'nargs': 1},
        ],
    },
    'pause queue': {
        'options': [
            {'dest': 'reason', 'complete': 'none', 'names': ['--reason'], 'secondary': [], 'help': 'Why (shown by inspect).', 'takes_value': True, 'nargs': 1, 'multiple': False, 'hidden': False, 'envvar': 'DJOBS_PAUSE_REASON', 'eager': False, 'required': False, 'min': None, 'max': None, 'type': 'str', 'default': None},
            {'dest': 'force', 'complete': 'none', 'names': ['--force'], 'secondary': [], 'help': 'Pause it even if djobs knows no such queue (yet).', 'takes_value': False, 'nargs': 1, 'multiple': False, 'hidden': False, 'envvar': 'DJOBS_PAUSE_FORCE', 'eager': False, 'required': False, 'min': None, 'max': None, 'type': 'bool', 'default': False},
            {'dest': 'help', 'complete': 'none', 'names': ['--help'], 'secondary': [], 'help': 'Show this message and exit.', 'takes_value': False, 'nargs': 1, 'multiple': False, 'hidden': False, 'envvar': None, 'eager': True, 'required': False},
        ],
        'arguments': [
            {'dest': 'name', 'complete': 'provider:queue_names', 'nargs': 1},
        ],
    },
    'pause worker': {
        'options': [
            {'dest': 'aggressive', 'complete': 'none', 'names': ['--aggressive'], 'secondary': [], 'help': 'Cancel running handlers now (default: let them finish).', 'takes_value': False, 'nargs': 1, 'multiple': False, 'hidden': False, 'envvar': 'DJOBS_PAUSE_AGGRESSIVE', 'eager': False, 'required': False, 'min': None, 'max': None, 'type': 'bool', 'default': False},
            {'dest': 'reason', 'complete': 'none', 'names': ['--reason'], 'secondary': [], 'help': 'Why (shown by inspect).', 'takes_value': True, 'nargs': 1, 'multiple': False, 'hidden': False, 'envvar': 'DJOBS_PAUSE_REASON', 'eager': False, 'required': False, 'min': None, 'max': None, 'type': 'str', 'default': None},
            {'dest': 'help', 'complete': 'none', 'names': ['--help'], 'secondary': [], 'help': 'Show this message and exit.', 'takes_value': False, 'nargs': 1, 'multiple': False, 'hidden': False, 'envvar': None, 'eager': True, 'required': False},
        ],
        'arguments': [
            {'dest': 'worker_id', 'complete': 'provider:worker_ids', 'nargs': 1},
        ],
    },
    'pause schedule': {
        'options': [
            {'dest': 'reason', 'complete': 'none', 'names': ['--reason'], 'secondary': [], 'help': 'Why (shown by inspect).', 'takes_value': True, 'nargs': 1, 'multiple': False, 'hidden': False, 'envvar': 'DJOBS_PAUSE_REASON', 'eager': False, 'required': False, 'min': None, 'max': None, 'type': 'str', 'default': None},
            {'dest': 'help', 'complete': 'none', 'names': ['--help'], 'secondary': [], 'help': 'Show this message and exit.', 'takes_value': False, 'nargs': 1, 'multiple': False, 'hidden': False, 'envvar': None, 'eager': True, 'required': False},
        ],
        'arguments': [
            {'dest': 'name', 'complete': 'provider:schedule_names', 'nargs': 1},
        ],
    },
    'resume': {
        'options': [
            {'dest': 'help', 'complete': 'none', 'names': ['--help'], 'secondary': [], 'help': 'Show this message and exit.', 'takes_value': False, 'nargs': 1, 'multiple': False, 'hidden': False, 'envvar': None, 'eager': True, 'required': False},
        ],
        'arguments': [
        ],
        'commands': [
            {'name': 'job', 'help': 'Resume a paused job (back to its prior...', 'hidden': False},
            {'name': 'queue', 'help': 'Resume a paused queue.', 'hidden': False},
            {'name': 'worker', 'help': 'Resume a paused worker.', 'hidden': False},
            {'name': 'schedule', 'help': 'Resume a paused schedule.', 'hidden': False},
        ],
    },
    'resume job': {
        'options': [
            {'dest': 'help', 'complete': 'none', 'names': ['--help'], 'secondary': [], 'help': 'Show this message and exit.', 'takes_value': False, 'nargs': 1, 'multiple': False, 'hidden': False, 'envvar': None, 'eager': True, 'required': False},
        ],
        'arguments': [
            {'dest': 'job_id', 'complete': 'provider:paused_job', 'nargs': 1},
        ],
    },
    'resume queue': {
        'options': [
            {'dest': 'help', 'complete': 'none', 'names': ['--help'], 'secondary': [], 'help': 'Show this message and exit.', 'takes_value': False, 'nargs': 1, 'multiple': False, 'hidden': False, 'envvar': None, 'eager': True, 'required': False},
        ],
        'arguments': [
            {'dest': 'name', 'complete': 'provider:queue_names', 'nargs': 1},
        ],
    },
    'resume worker': {
        'options': [
            {'dest': 'help', 'complete': 'none', 'names': ['--help'], 'secondary': [], 'help': 'Show this message and exit.', 'takes_value': False, 'nargs': 1, 'multiple': False, 'hidden': False, 'envvar': None, 'eager': True, 'required': False},
        ],
        'arguments': [
            {'dest': 'worker_id', 'complete': 'provider:worker_ids', 'nargs': 1},
        ],
    },
    'resume schedule': {
        'options': [
            {'dest': 'help', 'complete': 'none', 'names': ['--help'], 'secondary': [], 'help': 'Show this message and exit.', 'takes_value': False, 'nargs': 1, 'multiple': False, 'hidden': False, 'envvar': None, 'eager': True, 'required': False},
        ],
        'arguments': [
            {'dest': 'name', 'complete': 'provider:schedule_names', 'nargs': 1},
        ],
    },
    'schedules': {
        'options': [
            {'dest': 'help', 'complete': 'none', 'names': ['--help'], 'secondary': [], 'help': 'Show this message and exit.', 'takes_value': False, 'nargs': 1, 'multiple': False, 'hidden': False, 'envvar': None, 'eager': True, 'required': False},
        ],
        'arguments': [
        ],
        'commands': [
            {'name': 'rm', 'help': 'Delete a schedule from the database.', 'hidden': False},
        ],
    },
    'schedules rm': {
        'options': [
            {'dest': 'force', 'complete': 'none', 'names': ['--force'], 'secondary': [], 'help': 'Delete it even though the config declares it (it comes back at the next apply).', 'takes_value': False, 'nargs': 1, 'multiple': False, 'hidden': False, 'envvar': 'DJOBS_SCHEDULES_RM_FORCE', 'eager': False, 'required': False, 'min': None, 'max': None, 'type': 'bool', 'default': False},
            {'dest': 'help', 'complete': 'none', 'names': ['--help'], 'secondary': [], 'help': 'Show this message and exit.', 'takes_value': False, 'nargs': 1, 'multiple': False, 'hidden': False, 'envvar': None, 'eager': True, 'required': False},
        ],
        'arguments': [
            {'dest': 'name', 'complete': 'provider:schedule_names', 'nargs': 1},
        ],
    },
    'completion': {
        'options': [
            {'dest': 'help', 'complete': 'none', 'names': ['--help'], 'secondary': [], 'help': 'Show this message and exit.', 'takes_value': False, 'nargs': 1, 'multiple': False, 'hidden': False, 'envvar': None, 'eager': True, 'required': False},
        ],
        'arguments': [
        ],
        'commands': [
            {'name': 'show', 'help': 'Print the completion script for SHELL.', 'hidden': False},
            {'name': 'install', 'help': 'Write the completion script where SHELL...', 'hidden': False},
        ],
    },
    'completion show': {
        'options': [
            {'dest': 'help', 'complete': 'none', 'names': ['--help'], 'secondary': [], 'help': 'Show this message and exit.', 'takes_value': False, 'nargs': 1, 'multiple': False, 'hidden': False, 'envvar': None, 'eager': True, 'required': False},
        ],
        'arguments': [
            {'dest': 'shell', 'complete': None, 'nargs': 1},
        ],
    },
    'completion install': {
        'options': [
            {'dest': 'help', 'complete': 'none', 'names': ['--help'], 'secondary': [], 'help': 'Show this message and exit.', 'takes_value': False, 'nargs': 1, 'multiple': False, 'hidden': False, 'envvar': None, 'eager': True, 'required': False},
        ],
        'arguments': [
            {'dest': 'shell', 'complete': None, 'nargs': 1},
        ],
    },
    'limits': {
        'options': [
            {'dest': 'help', 'complete': 'none', 'names': ['--help'], 'secondary': [], 'help': 'Show this message and exit.', 'takes_value': False, 'nargs': 1, 'multiple': False, 'hidden': False, 'envvar': None, 'eager': True, 'required': False},
        ],
        'arguments': [
        ],
        'commands': [
            {'name': 'show', 'help': "Show one queue's limits (`djobs limits...", 'hidden': False},
            {'name': 'set', 'help': "Set a queue's limits, replacing its...", 'hidden': False},
            {'name': 'clear', 'help': 'Remove every limit of a queue.', 'hidden': False},
        ],
    },
    'limits show': {
        'options': [
            {'dest': 'help', 'complete': 'none', 'names': ['--help'], 'secondary': [], 'help': 'Show this message and exit.', 'takes_value': False, 'nargs': 1, 'multiple': False, 'hidden': False, 'envvar': None, 'eager': True, 'required': False},
        ],
        'arguments': [
            {'dest': 'name', 'complete': 'provider:queue_names', 'nargs': 1},
        ],
    },
    'limits set': {
        'options': [
            {'dest': 'rate', 'complete': 'none', 'names': ['--rate'], 'secondary': [], 'help': 'Starts per period, fleet-wide.', 'takes_value': True, 'nargs': 1, 'multiple': False, 'hidden': False, 'envvar': 'DJOBS_LIMITS_RATE', 'eager': False, 'required': False, 'min': None, 'max': None, 'type': 'str', 'default': None},
            {'dest': 'running', 'complete': 'none', 'names': ['--running'], 'secondary': [], 'help': 'Running jobs at once, fleet-wide.', 'takes_value': True, 'nargs': 1, 'multiple': False, 'hidden': False, 'envvar': 'DJOBS_LIMITS_RUNNING', 'eager': False, 'required': False, 'min': 0, 'max': 2147483647, 'type': 'int', 'default': None},
            {'dest': 'key_rate', 'complete': 'none', 'names': ['--key-rate'], 'secondary': [], 'help': 'Starts per period, per key.', 'takes_value': True, 'nargs': 1, 'multiple': False, 'hidden': False, 'envvar': 'DJOBS_LIMITS_KEY_RATE', 'eager': False, 'required': False, 'min': None, 'max': None, 'type': 'str', 'default': None},
            {'dest': 'key_running', 'complete': 'none', 'names': ['--key-running'], 'secondary': [], 'help': 'Running jobs at once, per key.', 'takes_value': True, 'nargs': 1, 'multiple': False, 'hidden': False, 'envvar': 'DJOBS_LIMITS_KEY_RUNNING', 'eager': False, 'required': False, 'min': 0, 'max': 2147483647, 'type': 'int', 'default': None},
            {'dest': 'help', 'complete': 'none', 'names': ['--help'], 'secondary': [], 'help': 'Show this message and exit.', 'takes_value': False, 'nargs': 1, 'multiple': False, 'hidden': False, 'envvar': None, 'eager': True, 'required': False},
        ],
        'arguments': [
            {'dest': 'name', 'complete': 'provider:queue_names', 'nargs': 1},
        ],
    },
    'limits clear': {
        'options': [
            {'dest': 'help', 'complete': 'none', 'names': ['--help'], 'secondary': [], 'help': 'Show this message and exit.', 'takes_value': False, 'nargs': 1, 'multiple': False, 'hidden': False, 'envvar': None, 'eager': True, 'required': False},
        ],
        'arguments': [
            {'dest': 'name', 'complete': 'provider:queue_names', 'nargs': 1},
        ],
    },
    'dlq': {
        'options': [
            {'dest': 'queue_name', 'complete': 'provider:queue_names', 'names': ['--queue', '-q'], 'secondary': [], 'help': 'Only this queue.', 'takes_value': True, 'nargs': 1, 'multiple': False, 'hidden': False, 'envvar': 'DJOBS_DLQ_QUEUE', 'eager': False, 'required': False, 'min': None, 'max': None, 'type': 'str', 'default': None},
            {'dest': 'job_type', 'complete': 'provider:job_types', 'names': ['--type', '-t'], 'secondary': [], 'help': 'Only this job type.', 'takes_value': True, 'nargs': 1, 'multiple': False, 'hidden': False, 'envvar': 'DJOBS_DLQ_TYPE', 'eager': False, 'required': False, 'min': None, 'max': None, 'type': 'str', 'default': None},
            {'dest': 'limit', 'complete': 'none', 'names': ['--limit', '-n'], 'secondary': [], 'help': 'At most N jobs.', 'takes_value': True, 'nargs': 1, 'multiple': False, 'hidden': False, 'envvar': 'DJOBS_DLQ_LIMIT', 'eager': False, 'required': False, 'min': 1, 'max': 100000, 'type': 'int', 'default': 50},
            {'dest': 'help', 'complete': 'none', 'names': ['--help'], 'secondary': [], 'help': 'Show this message and exit.', 'takes_value': False, 'nargs': 1, 'multiple': False, 'hidden': False, 'envvar': None, 'eager': True, 'required': False},
        ],
        'arguments': [
        ],
        'commands': [
            {'name': 'requeue', 'help': 'Requeue failed jobs in bulk (each as...', 'hidden': False},
        ],
    },
    'dlq requeue': {
        'options': [
            {'dest': 'queue_name', 'complete': 'provider:queue_names', 'names': ['--queue', '-q'], 'secondary': [], 'help': 'Only this queue.', 'takes_value': True, 'nargs': 1, 'multiple': False, 'hidden': False, 'envvar': 'DJOBS_DLQ_QUEUE', 'eager': False, 'required': False, 'min': None, 'max': None, 'type': 'str', 'default': None},
            {'dest': 'job_type', 'complete': 'provider:job_types', 'names': ['--type', '-t'], 'secondary': [], 'help': 'Only this job type.', 'takes_value': True, 'nargs': 1, 'multiple': False, 'hidden': False, 'envvar': 'DJOBS_DLQ_TYPE', 'eager': False, 'required': False, 'min': None, 'max': None, 'type': 'str', 'default': None},
            {'dest': 'since', 'complete': 'none', 'names': ['--since'], 'secondary': [], 'help': 'Only jobs that failed from T on: a duration ago (10m) or ISO 8601.', 'takes_value': True, 'nargs': 1, 'multiple': False, 'hidden': False, 'envvar': 'DJOBS_DLQ_SINCE', 'eager': False, 'required': False, 'min': None, 'max': None, 'type': 'str', 'default': None},
            {'dest': 'help', 'complete': 'none', 'names': ['--help'], 'secondary': [], 'help': 'Show this message and exit.', 'takes_value': False, 'nargs': 1, 'multiple': False, 'hidden': False, 'envvar': None, 'eager': True, 'required': False},
        ],
        'arguments': [
        ],
    },
}
