"""Driver errors become djobs errors here, once.

Every public storage operation is wrapped by `operation`: a lost or refused connection is thrown away (so
the next call reconnects) and surfaces as `StorageUnavailable`; reads are tried once more first, since a
pooled connection may simply have gone stale. A unique-index conflict is recognised by its SQLSTATE
(PostgreSQL) or its constraint message (SQLite), never by searching arbitrary text.

Only these operations raise `StorageUnavailable`. The worker relies on that: an error raised by a
handler is the job's failure whatever its class, even a `peewee.OperationalError` of the handler's own
database; only djobs's own calls mean "the database is away".
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar, cast

import peewee as pw

from djobs.errors import StorageRefused, StorageUnavailable, one_line

F = TypeVar("F", bound=Callable[..., Any])

#: Errors that mean "the database is busy or away; try again", never "your query is wrong".
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (pw.OperationalError, pw.InterfaceError)


def is_unique_violation(exc: BaseException) -> bool:
    if not isinstance(exc, pw.IntegrityError):
        return False
    for orig in (exc.__cause__, exc.__context__, *(exc.args[:1])):
        if getattr(orig, "sqlstate", None) == "23505":
            return True
    return str(exc).startswith("UNIQUE constraint failed")


def unavailable(exc: BaseException, what: str = "database unavailable") -> StorageUnavailable:
    return StorageUnavailable(f"{what}: {one_line(exc)}")


def operation(fn: F | None = None, *, read: bool = False) -> Any:
    """Decorate a public storage operation: transient errors reset the connection and become
    StorageUnavailable (reads are tried twice); a database that is not one (a file that is not SQLite, a
    schema of another program) is StorageUnavailable too, never a driver traceback."""

    def deco(f: F) -> F:
        @functools.wraps(f)
        def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
            tries = 2 if read else 1
            for attempt in range(tries):
                try:
                    return f(self, *args, **kwargs)
                except TRANSIENT_ERRORS as exc:
                    self.reset_connection()
                    if attempt + 1 >= tries:
                        raise unavailable(exc) from exc
                except (pw.DataError, pw.NotSupportedError, pw.ProgrammingError, pw.InternalError) as exc:
                    self.reset_connection()
                    raise StorageRefused(f"the database refused a statement: {one_line(exc)}") from exc
                except pw.DatabaseError as exc:
                    if isinstance(exc, pw.IntegrityError):
                        if is_unique_violation(exc):
                            raise
                        # A constraint or trigger the database has beyond djobs's own (or a NOT NULL).
                        self.reset_connection()
                        raise StorageRefused(f"the database refused a statement: {one_line(exc)}") from exc
                    self.reset_connection()
                    raise unavailable(exc) from exc
            raise AssertionError("unreachable")

        return cast(F, wrapper)

    return deco(fn) if fn is not None else deco
