"""SelectUniqueValue in a directory: each `{"$unique": [candidates]}` attribute of an operation becomes
the first candidate that no other entry under the kind's base holds (in any case: naming attributes
such as uid and cn match without case), before the operation is planned, so that the DN a template
builds from it is one no entry has; never the marker itself.

An entry that the operation's matching value already finds keeps the value it holds: a second cycle,
or a create linked to an account that exists, never renames it. When the unique attribute is the one
entries are matched on (a group's cn with `on_collision: {next: ...}`), there is no matching value
before the choice: an update finds its own entry by its DN instead, and keeps the value that entry
holds while it is one of the candidates (a source that renames the group renames the entry); an entry
that holds a candidate otherwise is another object's, and that candidate is taken. Values compare as
the directory compares names: without case, runs of spaces as one.

The connector resolves under one lock and claims each value it hands out, so two operations of one
worker never pick the same; another writer that takes the value meanwhile makes the add fail with
entryAlreadyExists, after which the connector resolves again.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from common.errors import PermanentError
from common.peers.ldap_names import escape_filter_value, same_dn
from common.unique import unique_candidates
from queues.contracts import Operation
from workers.connectors.ldap.plan import match_filter
from workers.connectors.ldap.settings import KindSettings

Search = Callable[[str, str, list[str]], list[tuple[str, dict[str, list[str]]]]]
"""(base, filter, attributes) -> entries as (DN, lowercased attribute name -> values)."""


def has_unique(op: Operation) -> bool:
    return any(unique_candidates(value) is not None for value in op.attributes.values())


def resolve_unique(
    op: Operation, kind: KindSettings, search: Search, claimed: set[tuple[str, str]]
) -> Operation:
    """`op` with each SelectUniqueValue attribute set to a value (see the module docstring); a
    `PermanentError` naming the candidates when every one is taken. `claimed` holds (LDAP attribute,
    casefolded value) pairs handed out before, and gets this operation's."""
    resolved = dict(op.attributes)
    for name, value in op.attributes.items():
        candidates = unique_candidates(value)
        if candidates is None:
            continue
        attribute = kind.ldap_name(name)
        held = _held_by_own_entry(op, kind, attribute, search, candidates)
        chosen = held or _first_free(candidates, kind, attribute, search, claimed, _match_value(op, kind))
        if chosen is None:
            raise PermanentError(
                f"all unique candidates for {name!r} are taken in the directory: {', '.join(candidates)}",
                code="unique",
            )
        claimed.add((attribute.lower(), _folded(chosen)))
        resolved[name] = chosen
    return dataclasses.replace(op, attributes=resolved)


def _match_value(op: Operation, kind: KindSettings) -> str | None:
    for name, value in [*op.attributes.items(), *((n, v) for n, v in op.matching)]:
        if (
            kind.ldap_name(name).lower() == kind.match.lower()
            and isinstance(value, str | int)
            and value != ""
        ):
            return str(value)
    return None


def _held_by_own_entry(
    op: Operation, kind: KindSettings, attribute: str, search: Search, candidates: list[str]
) -> str | None:
    """The value the operation's own entry (found by its matching value) holds, if it exists; without
    a matching value, the value of the entry at the operation's DN if it is one of the candidates."""
    match = _match_value(op, kind)
    if match is None:
        if not op.target_id:
            return None
        wanted = {_folded(c) for c in candidates}
        for dn, attributes in search(op.target_id, "(objectClass=*)", [attribute]):
            if same_dn(dn, op.target_id):
                return next((v for v in attributes.get(attribute.lower(), []) if _folded(v) in wanted), None)
        return None
    for _dn, attributes in search(kind.base, match_filter(kind, [match]), [attribute]):
        values = attributes.get(attribute.lower()) or []
        if values:
            return values[0]
    return None


def _first_free(
    candidates: list[str],
    kind: KindSettings,
    attribute: str,
    search: Search,
    claimed: set[tuple[str, str]],
    own_match: str | None,
) -> str | None:
    """The first candidate that no entry holds (but the operation's own) nor was claimed: one search."""
    terms = "".join(f"({attribute}={escape_filter_value(c)})" for c in candidates)
    query = terms if len(candidates) == 1 else f"(|{terms})"
    taken: set[str] = set()
    for _dn, attributes in search(kind.base, query, [attribute, kind.match]):
        mine = own_match is not None and own_match.casefold() in {
            v.casefold() for v in attributes.get(kind.match.lower(), [])
        }
        if not mine:
            taken.update(_folded(v) for v in attributes.get(attribute.lower(), []))
    for candidate in candidates:
        key = _folded(candidate)
        if key not in taken and (attribute.lower(), key) not in claimed:
            return candidate
    return None


def _folded(value: str) -> str:
    """A value as a directory's naming attributes compare it: without case, runs of spaces as one."""
    return " ".join(value.split()).casefold()
