"""Helpers behind the proof commands, `djobs bench` and `djobs selftest`.

The public entry points are `djobs.bench.run(...)` and `djobs.selftest.run(...)`; this package holds
what they share:

- `dbutil`   — throwaway databases (a temp SQLite file, a PostgreSQL schema) and URL handling;
- `raw`      — raw-SQL baselines (plain `sqlite3` and `psycopg`, in their own tables) measured beside djobs;
- `ledger`   — an append-only side-effect ledger written by handlers, read by the invariant checks;
- `handlers` — the job types the proof commands register;
- `worker`   — the worker process entry (`python -m djobs.proof.worker`);
- `procs`    — starting, killing and restarting those processes;
- `invariants` — the selftest checks, pure functions over what was recorded;
- `report`   — report objects, rich tables and JSON.
"""
