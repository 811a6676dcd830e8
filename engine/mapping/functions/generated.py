"""The functions that make values up rather than derive them: Guid and RandomString (volatile)."""

from __future__ import annotations

import secrets
import uuid
from typing import Any

from engine.mapping.functions.errors import MappingError
from engine.mapping.functions.values import integer, text


def guid() -> str:
    return str(uuid.uuid4())


_SPECIAL = "~!@#$%^&*_-+=`|\\(){}[]:;\"'<>,.?/"
_POOLS = ("0123456789", _SPECIAL, "ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def random_string(length: Any, *minimums_and_avoid: Any) -> str:
    total = integer(length, "Length") or 0
    minimums = [integer(v, "minimum") or 0 for v in minimums_and_avoid[:4]]
    avoid = set(text(minimums_and_avoid[4]) or "") if len(minimums_and_avoid) > 4 else set()
    if not 0 < total <= 256:
        raise MappingError(f"Length must be 1 to 256, got {total}")
    if min(minimums) < 0 or sum(minimums) > total:
        raise MappingError(f"the minimums add up to {sum(minimums)}, more than Length {total}")
    pools = ["".join(c for c in pool if c not in avoid) for pool in _POOLS]
    if any(need and not pool for need, pool in zip(minimums, pools, strict=True)) or not "".join(pools):
        raise MappingError("CharactersToAvoid leaves no characters to choose from")
    chars = [secrets.choice(pool) for need, pool in zip(minimums, pools, strict=True) for _ in range(need)]
    everything = "".join(pools)
    chars += [secrets.choice(everything) for _ in range(total - len(chars))]
    secrets.SystemRandom().shuffle(chars)
    return "".join(chars)
