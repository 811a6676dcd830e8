"""How operations become rows of one table: `RowMap` (attribute to column, the key, the values each
column's type takes) and the `Plan` it reduces a batch to. Pure: the connector runs the statements."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from operator import itemgetter
from typing import Any, Literal

import sqlalchemy as sa

from common.config.problems import raise_all
from common.errors import ConfigError, PermanentError
from common.unique import unique_candidates
from queues.contracts import Operation
from workers.connectors.base import Applied, Outcome
from workers.connectors.sql.settings import SqlSettings

Converter = Callable[[Any], Any]
End = Literal["deactivate", "delete"]


@dataclass(slots=True)
class Plan:
    """The net effect of a batch on each key: a rename of its linked row, the last upsert, then a
    deactivation or a delete."""

    upserts: dict[Any, dict[str, Any]] = field(default_factory=dict)
    ends: dict[Any, End] = field(default_factory=dict)
    renames: dict[Any, Any] = field(default_factory=dict)
    """Old key -> new key: the row an operation is linked to (its target id) takes the key it now
    matches on, before the upserts, so that the upsert updates that row instead of adding one."""

    def __bool__(self) -> bool:
        return bool(self.upserts or self.ends or self.renames)


@dataclass(frozen=True, slots=True, kw_only=True)
class RowMap:
    """The columns of a reflected table that a target's attributes go to, checked against its settings."""

    table: str
    key_column: str
    active_column: str | None
    deactivate: bool
    """A disable sets the active column to false (else it deletes the row)."""
    targets: Mapping[str, tuple[str, Converter | None]]
    """Attribute -> (column, the conversion its values need or None)."""
    strict: bool
    """No columns mapping was given: an attribute without a column of its name is an error."""
    key_attributes: tuple[str, ...]
    key_convert: Converter | None

    @classmethod
    def of(cls, table: sa.Table, settings: SqlSettings, at: Callable[[str], str]) -> RowMap:
        """Check the reflected `table` against `settings`, or raise `ConfigError` at the setting (named
        by `at(key)`) that does not fit it."""
        s = settings
        names = [column.name for column in table.columns]

        def missing(key: str, column: str) -> ConfigError:
            close = difflib.get_close_matches(column, names, n=1)
            fix = f"did you mean {close[0]!r}?" if close else f"the table has: {', '.join(names)}"
            return ConfigError(at(key), f"table {s.table!r} has no column {column!r}", fix)

        errors = []
        if s.key_column not in table.c:
            errors.append(missing("key_column", s.key_column))
        elif not _is_unique(table, s.key_column):
            errors.append(
                ConfigError(
                    at("key_column"),
                    f"column {s.key_column!r} is neither the primary key nor unique, so rows cannot be "
                    "matched",
                    f"add a primary key or a unique constraint on {s.table}({s.key_column})",
                )
            )
        if s.active_column and s.active_column not in table.c:
            errors.append(missing("active_column", s.active_column))
        mapping = s.columns if s.columns is not None else {name: name for name in names}
        targets: dict[str, tuple[str, Converter | None]] = {}
        for attribute, column in mapping.items():
            if column not in table.c:
                errors.append(missing(f"columns.{attribute}", column))
            else:
                targets[attribute] = (column, _converter(table.c[column].type))
        raise_all(errors)  # every one of them when `roster validate` collects, else the first
        return cls(
            table=s.table,
            key_column=s.key_column,
            active_column=s.active_column,
            deactivate=s.on_disable == "deactivate",
            targets=targets,
            strict=s.columns is None,
            key_attributes=tuple(a for a, c in mapping.items() if c == s.key_column),
            key_convert=_converter(table.c[s.key_column].type),
        )

    def plan(
        self, ops: Sequence[Operation], refused: Mapping[int, PermanentError] | None = None
    ) -> tuple[list[Outcome], Plan]:
        """Reduce `ops` to their net effect per key, in order, and the outcome of each if that applies.
        The operations in `refused` (by index) are not applied: their outcome is that error."""
        plan = Plan()
        outcomes: list[Outcome] = []
        for i, op in enumerate(ops):
            if refused and i in refused:
                outcomes.append(refused[i])
                continue
            try:
                if op.members_add or op.members_remove or op.members:
                    raise PermanentError(
                        "a SQL target keeps no group members: this group's members would be lost; "
                        "send the group job to a SCIM or LDAP target, or drop its `members:`",
                        code="members",
                    )
                key = self.key(op)
                if op.disabled and op.action in ("create", "update") and not self.active_column:
                    raise PermanentError(
                        f"this {op.object_type} is to be left disabled, and table {self.table!r} has no "
                        "column to say so: name a boolean column in the target's `active_column:`",
                        code="config",
                    )
                if op.action in ("create", "update"):
                    linked = self.linked_key(op)
                    if linked is not None and linked != key:
                        plan.renames[linked] = key
                    # dict assignment keeps the key's first position; the value is the last op's row
                    plan.upserts[key] = self.row(op, key)
                    plan.ends.pop(key, None)
                elif op.action == "disable" and self.deactivate:
                    plan.ends[key] = "deactivate"
                else:
                    plan.upserts.pop(key, None)
                    plan.ends[key] = "delete"
            except PermanentError as error:
                outcomes.append(error)
            else:
                outcomes.append(Applied(target_id=str(key)))
        return outcomes, plan

    def key(self, op: Operation) -> Any:
        """The key column's value for `op`: its match value, else its target id, else a key attribute."""
        value = op.match_value if op.match_value is not None else op.target_id
        if value is None:
            value = next((op.attributes[a] for a in self.key_attributes if a in op.attributes), None)
        if value is None or value == "":
            raise PermanentError(
                f"operation {op.op_id} has no value for key column {self.key_column!r}: "
                "no match value, no target id, and no attribute mapped to that column"
            )
        if isinstance(value, list | dict | set | tuple):
            raise PermanentError(f"operation {op.op_id}: the key value must be a single value")
        return self.key_convert(value) if self.key_convert else value

    def linked_key(self, op: Operation) -> Any:
        """The key of the row `op` is linked to (its target id, the key a result last reported), or
        None; it differs from `key(op)` when the value the key column holds changed (a rename)."""
        if op.target_id is None or op.target_id == "":
            return None
        return self.key_convert(op.target_id) if self.key_convert else op.target_id

    def row(self, op: Operation, key: Any) -> dict[str, Any]:
        """The row an upsert of `op` writes: its key, its attributes' columns, and active if there is one
        (false when `op` leaves the account disabled, so that the insert itself makes it disabled)."""
        key_column, active_column = self.key_column, self.active_column
        row: dict[str, Any] = {key_column: key}
        for attribute, value in op.attributes.items():
            target = self.targets.get(attribute)
            if target is None:
                if self.strict:
                    raise PermanentError(
                        f"attribute {attribute!r} has no column in table {self.table!r}; "
                        "add a column of that name, or a columns mapping in the target's settings"
                    )
                continue
            column, convert = target
            if column != key_column and column != active_column:
                row[column] = convert(value) if convert else value
        if active_column:
            row[active_column] = not op.disabled
        return row

    def column_of(self, attribute: str) -> str:
        target = self.targets.get(attribute)
        if target is None:
            raise PermanentError(f"attribute {attribute!r} has no column in table {self.table!r}")
        return target[0]


def values_of(keys: tuple[str, ...]) -> Callable[[Mapping[str, Any]], tuple[Any, ...]]:
    """A row's values in the order of `keys`, as a tuple even for one key."""
    if len(keys) == 1:
        (key,) = keys
        return lambda row: (row[key],)
    return itemgetter(*keys)


def may_be_unique(value: Any) -> bool:
    """Whether `value` is SelectUniqueValue's candidates, still to be resolved against the table."""
    return type(value) is dict and unique_candidates(value) is not None


def _is_unique(table: sa.Table, column: str) -> bool:
    if [c.name for c in table.primary_key.columns] == [column]:
        return True
    for constraint in table.constraints:
        if isinstance(constraint, sa.UniqueConstraint) and [c.name for c in constraint.columns] == [column]:
            return True
    return any(index.unique and [c.name for c in index.columns] == [column] for index in table.indexes)


def _converter(type_: sa.types.TypeEngine[Any]) -> Converter | None:
    """Bring a value to the column's Python type where a driver will not (asyncpg is strict)."""
    try:
        python_type = type_.python_type
    except NotImplementedError:
        return None
    if python_type is str:
        return _to_text
    if python_type is int:
        return _to_int
    return None


def _to_text(value: Any) -> Any:
    if type(value) is str:  # nearly every value: spare it the checks below
        return value
    if isinstance(value, int | float | Decimal):
        return str(value)
    if isinstance(value, list | dict | set | tuple):
        raise PermanentError(f"a {type(value).__name__} cannot be written to a text column")
    return value


def _to_int(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            return value  # the database will say what is wrong with it
    return value
