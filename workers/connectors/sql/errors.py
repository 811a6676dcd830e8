"""The one place where a database error becomes a `TransientError` or a `PermanentError`.

PostgreSQL (asyncpg) says what went wrong by SQLSTATE, SQLite by its result code's name; either decides
the kind. Errors without one fall back on SQLAlchemy's classes: a broken constraint or a bad value is
permanent, anything else from the driver is transient, and so is a database that cannot be reached.
"""

from __future__ import annotations

import sqlite3
from typing import Final

from sqlalchemy import exc as sa_exc

from common.errors import ConnectorError, PermanentError, TransientError

# SQLSTATE classes and codes worth a retry: connection (08), transaction rollback: serialization
# failure and deadlock (40), insufficient resources (53), operator intervention: shutdown, statement
# timeout (57), system error (58), internal error (XX), lock not available and object in use (55P03, 55006).
_PG_TRANSIENT_CLASSES: Final = frozenset({"08", "40", "53", "57", "58", "XX"})
_PG_TRANSIENT_CODES: Final = frozenset({"55P03", "55006"})
# SQLite result codes (extended names start with these) that are about the file, not the data.
_SQLITE_TRANSIENT: Final = (
    "SQLITE_BUSY",
    "SQLITE_LOCKED",
    "SQLITE_IOERR",
    "SQLITE_CANTOPEN",
    "SQLITE_FULL",
    "SQLITE_PROTOCOL",
    "SQLITE_READONLY",
    "SQLITE_NOMEM",
    "SQLITE_INTERRUPT",
)


def connector_error(exc: BaseException, *, password: str | None = None) -> ConnectorError | None:
    """The connector error that `exc` amounts to, or None if it is not a database error.

    `password` (the URL's) is masked wherever a driver repeats it in its message.
    """
    error = _classify(exc)
    if error is None or not password or password not in error.message:
        return error
    return type(error)(error.message.replace(password, "***"), code=error.code)


def _classify(exc: BaseException) -> ConnectorError | None:
    if isinstance(exc, ConnectorError):
        return exc
    if isinstance(exc, sa_exc.TimeoutError):
        return TransientError(f"no database connection became free in time: {exc}")
    invalidated = isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated
    orig: BaseException = exc.orig if isinstance(exc, sa_exc.StatementError) and exc.orig else exc
    cause = orig.__cause__
    # The drivers share no exception type to test against: SQLAlchemy's asyncpg adapter raises its own
    # DB-API error, holding the SQLSTATE itself or leaving it on asyncpg's exception in `__cause__`, and
    # sqlite3 sets `sqlite_errorname`. So the codes are read by name wherever a driver put them.
    sqlstate = getattr(orig, "sqlstate", None) or getattr(cause, "sqlstate", None)
    sqlite_name = getattr(orig, "sqlite_errorname", None)
    # asyncpg's own exception holds the bare message; its DETAIL (the failing row) stays out of it.
    message = getattr(cause, "message", None) or getattr(orig, "message", None) or str(orig) or repr(orig)
    code = sqlstate or sqlite_name
    if invalidated:
        return TransientError(message, code=code)
    if isinstance(sqlstate, str) and sqlstate:
        transient = sqlstate[:2] in _PG_TRANSIENT_CLASSES or sqlstate in _PG_TRANSIENT_CODES
        return (TransientError if transient else PermanentError)(message, code=sqlstate)
    if isinstance(sqlite_name, str) and sqlite_name:
        transient = sqlite_name.startswith(_SQLITE_TRANSIENT)
        return (TransientError if transient else PermanentError)(message, code=sqlite_name)
    permanent = (sa_exc.IntegrityError, sa_exc.DataError, sa_exc.ProgrammingError, sa_exc.NotSupportedError)
    if isinstance(exc, permanent):
        return PermanentError(message, code=code)
    if isinstance(exc, sa_exc.DBAPIError | sqlite3.Error):
        return TransientError(message, code=code)
    if isinstance(exc, sa_exc.StatementError):
        return PermanentError(message)  # a value the column type cannot bind
    if isinstance(exc, OSError | TimeoutError) or type(exc).__module__.startswith("asyncpg"):
        return TransientError(f"cannot reach the database: {message}")
    return None
