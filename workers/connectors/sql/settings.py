"""A SQL target's settings: the `SqlSettings` value and `parse_sql_settings`, which checks a job file's."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final, Literal

from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import URL, make_url

from common.config.validation import check_keys
from common.errors import ConfigError

OnDisable = Literal["deactivate", "delete"]

_KEYS: Final = (
    "url",
    "table",
    "key_column",
    "columns",
    "active_column",
    "on_disable",
    "create_table",
    "pool_size",
    "busy_timeout_s",
)
_ASYNC_DRIVERS: Final = {"sqlite": "aiosqlite", "postgresql": "asyncpg"}
_URL_HINT: Final = "write it as sqlite:///path/to/file.db or postgresql://user:password@host:5432/database"


@dataclass(frozen=True, slots=True, kw_only=True)
class SqlSettings:
    """A validated SQL target. `url` already names the async driver; its repr hides the password."""

    url: URL
    table: str
    key_column: str
    columns: Mapping[str, str] | None = None
    active_column: str | None = None
    on_disable: OnDisable = "deactivate"
    create_table: bool = False
    pool_size: int = 4
    busy_timeout_s: float = 5.0
    path: str = field(default="", compare=False)
    """Where these settings were read from (`targets[0]`), to name it in errors found at `open()`."""

    @property
    def dialect(self) -> str:
        return self.url.get_backend_name()

    @property
    def safe_url(self) -> str:
        return self.url.render_as_string(hide_password=True)


def parse_sql_settings(path: str, raw: Mapping[str, Any], *, base_dir: Path | None = None) -> SqlSettings:
    """Validate a SQL target's own settings (found at `path`), or raise `ConfigError` naming the key.

    A relative SQLite path is resolved against `base_dir` (the config file's folder; default: cwd).
    """

    def at(key: str) -> str:
        return f"{path}.{key}" if path else key

    if not isinstance(raw, Mapping):
        raise ConfigError(path, f"must be a mapping of settings, got {type(raw).__name__}")
    check_keys(path, raw, _KEYS, required=("url", "table", "key_column"))

    url = _parse_url(at("url"), raw.get("url"), base_dir or Path.cwd())
    table = _name(at("table"), raw.get("table"), "the table that holds the target's objects")
    key_column = _name(at("key_column"), raw.get("key_column"), "the column that holds the matching value")
    columns = _columns(at("columns"), raw.get("columns"))
    active_column = None
    if raw.get("active_column") is not None:
        active_column = _name(at("active_column"), raw["active_column"], "a boolean column")
        if active_column == key_column:
            raise ConfigError(at("active_column"), "is the key column", "name the boolean column instead")
        if columns is not None and active_column in columns.values():
            raise ConfigError(
                at("active_column"),
                f"column {active_column!r} is also mapped from an attribute in columns",
                "remove it from columns: Roster sets it on create, update and disable",
            )

    on_disable = raw.get("on_disable", "deactivate")
    if on_disable not in ("deactivate", "delete"):
        raise ConfigError(at("on_disable"), f"must be 'deactivate' or 'delete', got {on_disable!r}")
    if on_disable == "deactivate" and active_column is None:
        raise ConfigError(
            at("active_column"),
            "is required when on_disable is 'deactivate' (the default)",
            "name the boolean column that marks a row active, or set on_disable: delete",
        )

    create_table = raw.get("create_table", False)
    if not isinstance(create_table, bool):
        raise ConfigError(at("create_table"), f"must be true or false, got {create_table!r}")
    if create_table and columns is None:
        raise ConfigError(
            at("create_table"),
            "needs a columns mapping to know which columns to create",
            "add columns: {attribute: column}, or create the table yourself",
        )

    pool_size = raw.get("pool_size", 4)
    if isinstance(pool_size, bool) or not isinstance(pool_size, int) or pool_size < 1:
        raise ConfigError(at("pool_size"), f"must be an integer >= 1, got {pool_size!r}")

    busy_timeout_s = raw.get("busy_timeout_s", 5.0)
    if "busy_timeout_s" in raw and url.get_backend_name() != "sqlite":
        raise ConfigError(at("busy_timeout_s"), "applies to SQLite only", "remove it for this database")
    if isinstance(busy_timeout_s, bool) or not isinstance(busy_timeout_s, int | float) or busy_timeout_s < 0:
        raise ConfigError(at("busy_timeout_s"), f"must be a number of seconds >= 0, got {busy_timeout_s!r}")

    return SqlSettings(
        url=url,
        table=table,
        key_column=key_column,
        columns=columns,
        active_column=active_column,
        on_disable=on_disable,
        create_table=create_table,
        pool_size=pool_size,
        busy_timeout_s=float(busy_timeout_s),
        path=path,
    )


def _parse_url(path: str, value: Any, base_dir: Path) -> URL:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(path, "is required and must be a database URL", _URL_HINT)
    try:
        url = make_url(value.strip())
    except (sa_exc.ArgumentError, ValueError):
        # The exception text repeats the whole string, password included: never show it.
        raise ConfigError(path, "cannot be read as a database URL", _URL_HINT) from None
    backend, _, driver = url.drivername.partition("+")
    if backend == "postgres":
        backend = "postgresql"
    if backend not in _ASYNC_DRIVERS:
        raise ConfigError(path, f"database {backend!r} is not supported", "use SQLite or PostgreSQL")
    wanted = _ASYNC_DRIVERS[backend]
    if driver not in {"", wanted} | ({"pysqlite"} if backend == "sqlite" else set()):
        raise ConfigError(
            path, f"driver {driver!r} is not supported", f"write {backend}:// and Roster uses {wanted}"
        )
    url = url.set(drivername=f"{backend}+{wanted}")
    database = url.database
    if backend == "sqlite" and (not database or database == ":memory:"):
        raise ConfigError(
            path,
            "names an in-memory SQLite database, which vanishes with its connection",
            "name a file: sqlite:///path/to/file.db",
        )
    if backend == "sqlite" and database and not database.startswith("file:"):
        if not Path(database).is_absolute():
            url = url.set(database=str((base_dir / database).resolve()))
    if backend == "postgresql" and not url.host and not url.query.get("host"):
        raise ConfigError(path, "names no host", _URL_HINT)
    return url


def _name(path: str, value: Any, what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        got = "it is missing" if value is None else f"got {value!r}"
        raise ConfigError(path, f"is required and must be a name ({got})", f"name {what}")
    return value.strip()


def _columns(path: str, value: Any) -> Mapping[str, str] | None:
    if value is None:
        return None
    if not isinstance(value, Mapping) or not value:
        raise ConfigError(path, "must be a non-empty mapping", "write it as {attribute: column, ...}")
    seen: dict[str, str] = {}
    for attribute, column in value.items():
        if not isinstance(attribute, str) or not attribute:
            raise ConfigError(path, f"attribute {attribute!r} is not a name", "use the attribute's name")
        if not isinstance(column, str) or not column.strip():
            raise ConfigError(f"{path}.{attribute}", f"must be a column name, got {column!r}")
        column = column.strip()
        if column in seen:
            raise ConfigError(
                f"{path}.{attribute}",
                f"column {column!r} is already mapped from {seen[column]!r}",
                "map each column from one attribute",
            )
        seen[column] = attribute
    return MappingProxyType({attribute: column for column, attribute in seen.items()})
