"""The source columns a job reads, each with the path of the setting that names it.

A mapping's `source:`, the `[attributes]` of an expression (as the expression's own parser found them),
a scoping clause's `attribute:`, a group job's `members.source`, a user job's `dates:` and a file
source's `id_column`. A
column that the source lacks reads as null on every object: the mapped attribute is blanked everywhere.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass

from common.config.validation import join
from common.errors import ConfigError
from engine.config import JobConfig
from engine.mapping.base import DirectMapping
from engine.mapping.base import Mapping as AttributeMapping
from engine.mapping.collision import NextOnCollision
from engine.mapping.expression_mapping import ExpressionMapping


@dataclass(frozen=True, slots=True)
class ColumnUse:
    """One setting that names one source column."""

    path: str
    """The setting: `jobs[0].mappings[3].source`."""
    column: str
    what: str
    """How the setting names it, for the message: `column 'titel'`, `[titel]`."""


def column_uses(job: JobConfig, *, id_column: str | None = None) -> list[ColumnUse]:
    """Every column `job` reads, in the order of its settings; `id_column` for a file source's."""
    path = job.path
    uses: list[ColumnUse] = []
    if id_column is not None:
        uses.append(ColumnUse(join(path, "source.id_column"), id_column, f"column {id_column!r}"))
    for i, mapping in enumerate(job.mappings):
        uses += _mapping_uses(mapping_path(job, i), mapping)
    for group in job.scoping.groups:
        for clause in group:
            where = join(clause.path, "attribute") if clause.path else join(path, "scoping")
            uses.append(ColumnUse(where, clause.attribute, f"column {clause.attribute!r}"))
    if job.members is not None:
        source = job.members.source
        uses.append(ColumnUse(join(path, "members.source"), source, f"column {source!r}"))
    if job.dates is not None:  # a start or end never read: everyone active, whatever the export says
        for key, column in (("starts_on", job.dates.starts_on), ("ends_on", job.dates.ends_on)):
            if column is not None:
                uses.append(ColumnUse(join(path, f"dates.{key}"), column, f"column {column!r}"))
    return uses


def _mapping_uses(where: str, mapping: AttributeMapping) -> list[ColumnUse]:
    if isinstance(mapping, NextOnCollision):
        further = [
            ColumnUse(join(join(where, "on_collision.next"), i), name, f"[{name}]")
            for i, candidate in enumerate(mapping.next)
            for name in sorted(candidate.expression.references)
        ]
        return _mapping_uses(where, mapping.mapping) + further
    if isinstance(mapping, DirectMapping):
        return [ColumnUse(join(where, "source"), mapping.source, f"column {mapping.source!r}")]
    if isinstance(mapping, ExpressionMapping):
        return [
            ColumnUse(join(where, "expression"), name, f"[{name}]")
            for name in sorted(mapping.expression.references)
        ]
    return []


def mapping_path(job: JobConfig, i: int) -> str:
    """Where `job.mappings[i]` was read from (a job read by `roster validate` may lack the mappings that
    could not be read, so the index in the file can be another)."""
    return job.mapping_paths[i] if i < len(job.mapping_paths) else join(join(job.path, "mappings"), i)


def absent(use: ColumnUse, names: Sequence[str], origin: str) -> ConfigError:
    """The problem of `use` naming a column that `origin` (`the header of people.csv`) lacks: the near
    name (or the same in other case) if there is one, else the columns there are."""
    by_case = [name for name in names if name.casefold() == use.column.casefold()]
    close = by_case[:1] or difflib.get_close_matches(use.column, names, n=1)
    listed = ", ".join(names[:30]) + (", ..." if len(names) > 30 else "")
    fix = f"did you mean {close[0]!r}?" if close else f"its columns: {listed}"
    return ConfigError(use.path, f"{use.what} is not in {origin}", fix)
