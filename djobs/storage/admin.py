"""Administrative statements outside any djobs store: throwaway PostgreSQL schemas for the proof commands
(`djobs selftest`, `djobs bench`) and the server's version for their reports."""

from __future__ import annotations

import re

_SCHEMA = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


def _exec(dsn: str, sql: str) -> list[tuple[object, ...]]:
    import psycopg

    with psycopg.connect(dsn, autocommit=True, connect_timeout=10) as conn:
        cur = conn.execute(sql)
        return list(cur.fetchall()) if cur.description else []


def create_pg_schema(dsn: str, schema: str) -> None:
    if not _SCHEMA.match(schema):
        raise ValueError(f"bad schema name {schema!r}")
    _exec(dsn, f'CREATE SCHEMA "{schema}"')


def drop_pg_schema(dsn: str, schema: str) -> None:
    if not _SCHEMA.match(schema):
        raise ValueError(f"bad schema name {schema!r}")
    _exec(dsn, f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def pg_server_version(dsn: str) -> str | None:
    rows = _exec(dsn, "SHOW server_version")
    return str(rows[0][0]) if rows else None
