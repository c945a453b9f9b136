"""Throwaway databases for the proof commands: never the user's own jobs.

    with throwaway("postgresql://postgres@127.0.0.1/test", prefix="djobs_selftest") as db:
        db.url         # postgresql://...?schema=djobs_selftest_3f2a...   (djobs.connect understands it)
        db.dsn         # the URL psycopg understands (no ?schema=)
        db.schema      # the schema name
    with throwaway(None) as db:      # a fresh SQLite file in a temp directory
        db.path

A PostgreSQL URL gets a fresh schema that is dropped on exit; any other URL (or none) gets a temp SQLite
file in a temp directory, removed on exit unless `keep=True`. `restart_postgres()` restarts the local
Debian cluster (`djobs selftest --db-restart`, the restart tests).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from djobs.storage.admin import create_pg_schema, drop_pg_schema


def is_postgres(url: str | None) -> bool:
    return bool(url) and urlsplit(url or "").scheme.split("+")[0] in ("postgres", "postgresql", "psycopg3")


def split_schema(url: str) -> tuple[str, str | None]:
    """Return (url without the `schema` query parameter, that schema or None)."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    schema = next((v for k, v in query if k == "schema"), None)
    rest = [(k, v) for k, v in query if k != "schema"]
    scheme = "postgresql" if parts.scheme in ("postgres", "psycopg3") else parts.scheme
    return urlunsplit((scheme, parts.netloc, parts.path, urlencode(rest), parts.fragment)), schema


def with_schema(url: str, schema: str) -> str:
    base, _ = split_schema(url)
    return f"{base}{'&' if '?' in base else '?'}schema={schema}"


def fresh_url(backend: str, pg_url: str, directory: Path, prefix: str) -> tuple[str, Callable[[], None] | None]:
    """A new empty database for one measurement, and how to drop it: a file in `directory` (SQLite) or a
    schema of its own named `prefix_…` (PostgreSQL, which the benchmarks' `throwaway` cannot reuse per run
    without reconnecting)."""
    if backend == "sqlite":
        return f"sqlite:///{directory / (uuid.uuid4().hex + '.db')}", None
    dsn, _ = split_schema(pg_url)
    schema = f"{prefix}_{uuid.uuid4().hex[:8]}"
    create_pg_schema(dsn, schema)
    return with_schema(pg_url, schema), (lambda: drop_pg_schema(dsn, schema))


def redact(url: str) -> str:
    """The URL without its password, for reports."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


@dataclass(frozen=True)
class Throwaway:
    url: str
    backend: str  # "sqlite" | "postgres"
    dsn: str | None = None  # psycopg DSN (PostgreSQL)
    schema: str | None = None  # PostgreSQL schema
    path: str | None = None  # SQLite file
    directory: str | None = None  # SQLite temp directory (for side files: ledgers, raw baselines)


@contextmanager
def throwaway(url: str | None, prefix: str = "djobs_proof", keep: bool = False) -> Iterator[Throwaway]:
    directory = tempfile.mkdtemp(prefix=prefix + "_")
    try:
        if is_postgres(url):
            assert url is not None
            dsn, _ = split_schema(url)
            schema = f"{prefix}_{uuid.uuid4().hex[:10]}"
            create_pg_schema(dsn, schema)
            try:
                yield Throwaway(with_schema(url, schema), "postgres", dsn, schema, None, directory)
            finally:
                if not keep:
                    try:
                        drop_pg_schema(dsn, schema)
                    except Exception:
                        pass  # the server may be restarting; a leftover schema is harmless
        else:
            path = os.path.join(directory, "djobs.db")
            yield Throwaway(f"sqlite:///{path}", "sqlite", None, None, path, directory)
    finally:
        if not keep:
            shutil.rmtree(directory, ignore_errors=True)


PG_CTL = ["pg_ctlcluster", "--skip-systemctl-redirect", "{version}", "{cluster}"]
#: How long pg_ctl may wait for the server to stop (its default, 60 s, is shorter than a busy server's
#: shutdown checkpoint can take: a checkpoint syncing tens of thousands of files on a loaded machine).
PG_STOP_WAIT = 300


def restart_postgres() -> None:
    """Restart the local Debian cluster (DJOBS_PG_CLUSTER, default "main"). If the restart fails, the server
    is started again before the error is raised, so a failed restart never leaves it down."""
    version = sorted(os.listdir("/etc/postgresql"))[-1]
    cluster = os.environ.get("DJOBS_PG_CLUSTER", "main")
    ctl = [part.format(version=version, cluster=cluster) for part in PG_CTL]
    try:
        subprocess.run([*ctl, "restart", "--", "-t", str(PG_STOP_WAIT)], check=True, capture_output=True,
                       timeout=PG_STOP_WAIT + 60)  # fmt: skip
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired):
        subprocess.run([*ctl, "start"], check=False, capture_output=True, timeout=PG_STOP_WAIT + 60)
        raise
