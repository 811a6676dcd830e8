"""SelectUniqueValue on the wire: the engine sends candidates, the worker picks the first free one;
the marker both write and read.

Uniqueness can only be checked in the target, so an attribute of an operation may hold
`{"$unique": ["jdoe", "jodoe", "johndoe"]}`; each connector resolves it by asking its target which
candidates another object already holds, and fails the operation permanently when all are taken.
"""

from __future__ import annotations

from typing import Any

UNIQUE_KEY = "$unique"


def unique_candidates(value: Any) -> list[str] | None:
    """The candidates if `value` is a SelectUniqueValue marker, else None."""
    if isinstance(value, dict) and len(value) == 1 and UNIQUE_KEY in value:
        candidates = value[UNIQUE_KEY]
        if isinstance(candidates, list):
            return [str(c) for c in candidates]
    return None
