"""`JsonPath`: where a value sits in a service's JSON answer, as a small dotted path.

The grammar is a subset of JSONPath: an optional `$`, then names and indexes, such as `data.id`,
`$.items[0].id`, `results`, or `$` (and the empty path) for the whole document. A name is letters,
digits, `_` and `-`; an index is a whole number of 0 or more. Nothing else (no wildcards, filters or
quoted names): a path reads one value or none, never a guess.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Final

_STEP: Final = re.compile(r"\.?([A-Za-z0-9_-]+)|\[(\d+)\]")
_MISSING: Final = object()


@dataclass(frozen=True, slots=True)
class JsonPath:
    """A parsed path: names (str) and indexes (int), in order."""

    text: str
    steps: tuple[str | int, ...]

    def get(self, document: Any, default: Any = None) -> Any:
        """The value at this path in `document`, or `default` where there is none."""
        node = document
        for step in self.steps:
            if isinstance(step, int):
                node = node[step] if isinstance(node, list) and step < len(node) else _MISSING
            else:
                node = node.get(step, _MISSING) if isinstance(node, dict) else _MISSING
            if node is _MISSING:
                return default
        return node

    def has(self, document: Any) -> bool:
        return self.get(document, _MISSING) is not _MISSING

    def __str__(self) -> str:
        return self.text or "$"


def parse_json_path(text: str) -> JsonPath:
    """The path `text` stands for; `ValueError` saying where it is not one."""
    rest = text.strip().removeprefix("$")
    steps: list[str | int] = []
    position = 0
    while position < len(rest):
        found = _STEP.match(rest, position)
        # A name after the first step comes after a dot: `items[0]id` is not a path.
        if found is None or (steps and found.group(1) is not None and not found.group(0).startswith(".")):
            raise ValueError(
                f"{text!r} is not a JSON path at {rest[position:]!r} "
                "(write names and [indexes], such as data.id or $.items[0].id)"
            )
        steps.append(found.group(1) if found.group(1) is not None else int(found.group(2)))
        position = found.end()
    return JsonPath(text, tuple(steps))
