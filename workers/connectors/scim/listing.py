"""Listing a SCIM service's Users or Groups, as pure functions: the query of a page and the rows read
from its answer. The connector sends the requests (`ScimConnector.list_objects`).

A listing is GET `/Users` (or `/Groups`) with `startIndex` and `count` (RFC 7644 §3.4.2.4: 1-based,
and a server may return fewer than `count`, as scim2-server does past 1,000) and `attributes=` naming
only what is wanted (§3.4.2.5); a server that ignores `attributes` answers whole resources, read the same
way. The next page starts after the resources this one held, until `totalResults` are read. Offsets shift
when objects are added or removed meanwhile, so a `totalResults` that changes between pages, a page that
comes back empty early, or an id seen twice makes the listing incomplete: an error, never a guess.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final
from urllib.parse import quote

from common.errors import TransientError
from workers.connectors.scim.paths import AttrPath

PAGE_SIZE: Final = 1_000


def listing_query(paths: Sequence[AttrPath], start_index: int, count: int = PAGE_SIZE) -> str:
    """The query of one page: its window, and the attributes asked for (the id always comes)."""
    names = dict.fromkeys(f"{p.prefix}{p.name}" for p in paths)
    wanted = quote(",".join(names), safe=",:.")
    return f"startIndex={start_index}&count={count}" + (f"&attributes={wanted}" if names else "")


class PageReader:
    """Reads the pages of one listing in order, checking that together they hold every object once."""

    def __init__(self, kind: str, paths: Sequence[AttrPath]) -> None:
        self._kind = kind
        self._paths = tuple(paths)
        self._total: int | None = None
        self._seen: set[str] = set()
        self.next_index = 1

    @property
    def done(self) -> bool:
        return self._total is not None and len(self._seen) >= self._total

    def read(self, body: Any) -> list[list[Any]]:
        """The rows of one page's answer; raises `TransientError` when the pages do not add up."""
        if not isinstance(body, dict):
            raise self._incomplete("a page is not a list response")
        total = body.get("totalResults")
        resources = body.get("Resources") or []
        if not isinstance(total, int) or not isinstance(resources, list):
            raise self._incomplete("a page has no totalResults or Resources")
        if self._total is None:
            self._total = total
        elif total != self._total:
            raise self._incomplete(f"totalResults went from {self._total} to {total} while listing")
        if not resources and not self.done:
            raise self._incomplete(f"a page at startIndex {self.next_index} came back empty")
        rows = []
        for resource in resources:
            target_id = resource.get("id") if isinstance(resource, dict) else None
            if not isinstance(target_id, str) or not target_id:
                raise self._incomplete("a listed resource has no id")
            if target_id in self._seen:
                raise self._incomplete(f"resource {target_id!r} came twice")
            self._seen.add(target_id)
            rows.append([target_id, *(listed_value(path, path.get(resource)) for path in self._paths)])
        self.next_index += len(resources)
        return rows

    def _incomplete(self, why: str) -> TransientError:
        return TransientError(f"listing {self._kind}s: {why}; the listing is incomplete", code="listing")


def listed_value(path: AttrPath, value: Any) -> Any:
    """A value as a listing page carries it: a scalar, a list of scalars, or None. An entry of a
    multi-valued attribute counts by its `value`; anything else cannot be compared, so it is an error
    (a value left out would make its object look absent)."""
    if isinstance(value, dict):
        value = value.get("value")
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, list):
        values = [v.get("value") if isinstance(v, dict) else v for v in value]
        if all(v is None or isinstance(v, str | int | float | bool) for v in values):
            return values
    raise TransientError(f"listing: {path.scim()} holds a {type(value).__name__}, which cannot be matched on")
