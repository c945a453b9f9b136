"""`connect(url)`: open (and on first use create or migrate) a djobs store on SQLite or PostgreSQL."""

from __future__ import annotations

import os
import re
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit, urlunsplit

import peewee as pw

from djobs.errors import StorageUnavailable
from djobs.storage.core import PeeweeStorage
from djobs.storage.pool import PoolConfig

#: The connection parameters libpq knows (a URL's query string may carry any of them).
LIBPQ_PARAMETERS = frozenset(
    "host hostaddr port dbname user password passfile require_auth channel_binding connect_timeout "
    "client_encoding options application_name fallback_application_name keepalives keepalives_idle "
    "keepalives_interval keepalives_count tcp_user_timeout replication gssencmode sslmode requiressl "
    "sslcompression sslcert sslkey sslpassword sslcertmode sslrootcert sslcrl sslcrldir sslsni requirepeer "
    "ssl_min_protocol_version ssl_max_protocol_version krbsrvname gsslib gssdelegation service "
    "target_session_attrs load_balance_hosts".split()
)


def _split_url(url: str) -> tuple[str, str, dict[str, str]]:
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    return parts.scheme.lower(), urlunsplit(parts._replace(query="")), query


def connect(
    url: str = "sqlite:///djobs.db",
    *,
    pool: PoolConfig | None = None,
    busy_timeout: float = 5.0,
    synchronous: str = "NORMAL",
    connect_timeout: float = 5.0,
) -> PeeweeStorage:
    """Open (and on first use create) a djobs store.

    `sqlite:///relative.db`, `sqlite:////absolute/path.db`, `postgresql://user@host:port/db`. A PostgreSQL
    URL may carry `?schema=NAME` to keep djobs's tables in their own schema (created if missing).
    SQLite runs in WAL mode with `synchronous=NORMAL` (survives process crashes; pass "FULL" to survive
    power loss too). Raises ValueError for a bad URL and StorageUnavailable when the server cannot be
    reached.
    """
    if not isinstance(url, str) or "://" not in url:
        raise ValueError(f"bad database URL {url!r} (expected sqlite:///path.db or postgresql://user@host/db)")
    scheme, base, query = _split_url(url)
    if scheme in ("sqlite", "sqlite3"):
        path = unquote(url.split("://", 1)[1])
        path = path.split("?", 1)[0]
        if path.startswith("/"):
            path = path[1:]  # sqlite:///rel.db -> rel.db ; sqlite:////abs.db -> /abs.db
        if not path:
            raise ValueError(f"bad SQLite URL {url!r}: no file path")
        if path != ":memory:":
            parent = os.path.dirname(os.path.abspath(path))
            if not os.path.isdir(parent):
                raise StorageUnavailable(f"cannot open SQLite database {path!r}: directory {parent!r} does not exist")
        db = pw.SqliteDatabase(
            path,
            pragmas={
                "journal_mode": "wal",
                "synchronous": synchronous,
                "busy_timeout": int(busy_timeout * 1000),
                "foreign_keys": 0,
            },
            lock_type="IMMEDIATE",
            timeout=busy_timeout,
            check_same_thread=False,
        )
        store = PeeweeStorage(db, busy_timeout=busy_timeout)
    elif scheme in ("postgresql", "postgres", "psycopg", "psycopg3", "postgresql+psycopg"):
        schema = query.pop("schema", None)
        unknown = sorted(set(query) - LIBPQ_PARAMETERS)
        if unknown:
            raise ValueError(
                f"unknown PostgreSQL connection parameter(s) {', '.join(map(repr, unknown))} in the database URL "
                "(djobs takes ?schema=NAME and libpq's own parameters such as sslmode or connect_timeout)"
            )
        if schema is not None and not schema.replace("_", "").isalnum():
            raise ValueError(f"bad schema name {schema!r} in database URL")
        if "connect_timeout" not in query:
            query["connect_timeout"] = str(max(1, int(connect_timeout)))
        if schema:
            query["options"] = (query.get("options", "") + f" -c search_path={schema}").strip()
        conninfo = urlunsplit(urlsplit(base)._replace(scheme="postgresql", query=urlencode(query, quote_via=quote)))
        from djobs.storage.pgpool import DjobsPooledPostgres

        jit_off = re.search(r"\bjit\s*=", query.get("options", "")) is None  # a URL setting jit is obeyed
        db = DjobsPooledPostgres(conninfo, pool or PoolConfig.default(), jit_off=jit_off, prefer_psycopg3=True)
        store = PeeweeStorage(db, conninfo=conninfo, schema=schema)
    else:
        raise ValueError(f"unsupported database URL scheme {scheme!r} (use sqlite:// or postgresql://)")
    store.ensure_schema()
    return store
