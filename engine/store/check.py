"""`roster engine --check`'s look at the state store, changing nothing: a SQLite file that exists is
read for its schema version and must be writable (with its folder, for SQLite's journal); one that
does not exist yet needs a folder the engine may create it in. A PostgreSQL store must take the login
and answer; its schema version is read (none yet: the user must be allowed to create tables).

A version older than this Roster's is fine (the engine migrates it at start); a newer one is not.
"""

from __future__ import annotations

import os
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine

from engine.store.migrations import LATEST, version

STATE_SETTING = "--state / ROSTER_STATE / engine.state"


async def check_state(url: str) -> tuple[str, str | None]:
    """What was checked, and what is wrong with it with its fix (None: fine); never the password."""
    parsed = sa.make_url(url)
    shown = parsed.render_as_string(hide_password=True)
    if parsed.get_backend_name() == "sqlite":
        problem = _sqlite_problem(parsed.database or "")
        if problem is not None:
            return f"state store {shown}", problem
        if not Path(parsed.database or "").exists():
            return f"state store {shown}: not there yet; the engine creates it at start", None
    connect_args = {"timeout": 10} if parsed.get_backend_name() == "postgresql" else {}
    engine = create_async_engine(parsed, hide_parameters=True, connect_args=connect_args)
    try:
        async with engine.connect() as conn:
            current = await version(conn)
            creatable = await _may_create(conn) if current == 0 else True
    except (OSError, sa.exc.SQLAlchemyError) as exc:
        return f"state store {shown}", _refusal(exc, parsed)
    finally:
        await engine.dispose()
    what = f"state store {shown}"
    if current > LATEST:
        return what, (
            f"its schema version {current} is newer than this Roster's ({LATEST}): run a newer Roster, "
            f"or point {STATE_SETTING} at another store"
        )
    if not creatable:
        return what, (
            f"user {parsed.username!r} may not create tables in schema public: grant it "
            f"(GRANT CREATE ON SCHEMA public TO {parsed.username}) or give the store's owner in the URL"
        )
    if current == 0:
        return f"{what}: reached, empty; the engine creates its tables at start", None
    if current < LATEST:
        return f"{what}: reached, schema version {current}; the engine migrates it to {LATEST} at start", None
    return f"{what}: reached, schema version {current} (current)", None


def _sqlite_problem(database: str) -> str | None:
    path = Path(database)
    if path.exists():
        if not os.access(path, os.R_OK | os.W_OK):
            return f"{path} cannot be read and written by this user: fix its owner or mode"
        if not os.access(path.parent, os.W_OK | os.X_OK):
            return f"its folder {path.parent} is not writable (SQLite keeps its journal there): fix its mode"
        return None
    folder = next((p for p in path.parents if p.exists()), None)
    if folder is None or not os.access(folder, os.W_OK | os.X_OK):
        return f"{folder or path.parent} is not writable, so {path} cannot be made: fix {STATE_SETTING}"
    return None


async def _may_create(conn: AsyncConnection) -> bool:
    if conn.dialect.name != "postgresql":
        return True
    query = sa.text("SELECT has_schema_privilege(current_user, 'public', 'CREATE')")
    return bool((await conn.execute(query)).scalar())


def _refusal(exc: BaseException, url: sa.URL) -> str:
    """The failed connect in words, with the fix; without the password."""
    text = str(getattr(exc, "orig", None) or exc)
    if url.password:
        text = text.replace(str(url.password), "***")
    where = f"{url.host}:{url.port or 5432}"
    lowered = text.lower()
    if "password authentication failed" in lowered or "authentication" in lowered:
        return f"PostgreSQL at {where} refused the login of {url.username!r}: check the user and password"
    if "does not exist" in lowered and "database" in lowered:
        return f"PostgreSQL at {where} has no database {url.database!r}: create it, or fix the URL"
    if "connect call failed" in lowered or "refused" in lowered or isinstance(exc, ConnectionRefusedError):
        return (
            f"cannot reach PostgreSQL at {where}: connection refused: is it running there, and does no "
            f"firewall reject the port? ({STATE_SETTING})"
        )
    if isinstance(exc, TimeoutError) or "timeout" in lowered:
        return f"no answer from PostgreSQL at {where}: is the host reachable? ({STATE_SETTING})"
    return f"cannot open the state store: {text.splitlines()[0] if text else type(exc).__name__}"
