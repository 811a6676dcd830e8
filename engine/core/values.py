"""Which text may reach a target: no C0 control characters but tab, newline and carriage return, and
no lone surrogates.

A NUL byte ends a C string in many targets (or is refused by them: PostgreSQL will not store one), and
other C0 controls corrupt LDIF, CSV exports and terminals downstream. A lone surrogate (U+D800 to
U+DFFF without its pair, e.g. from the JSON escape `"\\ud800"`) is not valid Unicode text: it has no
UTF-8 encoding, so a target would get invalid UTF-8 or the write would fail. An object whose mapped
attributes hold either is refused with the attribute and the position, and never sent; the other
objects of the cycle go on.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from engine.mapping.functions.errors import MappingError

_REFUSED = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff]")
"""C0 controls but tab (09), newline (0A) and carriage return (0D), and the surrogates."""


class RefusedValue(MappingError):
    """A mapped value holds a character no target may get: the object fails, not the cycle."""


def flaw(text: str) -> str | None:
    """What is wrong with `text` for a target, with the character's position (1-based), or None."""
    if text.isascii() and text.isprintable():  # most values: no control, no surrogate
        return None
    found = _REFUSED.search(text)
    if found is None:
        return None
    char, position = found.group(), found.start() + 1
    code = f"U+{ord(char):04X}"
    if "\ud800" <= char <= "\udfff":
        return f"a lone surrogate ({code}) at character {position}, which is not valid Unicode text"
    name = " NUL" if char == "\x00" else ""
    return f"a control character ({code}{name}) at character {position}"


def check_values(attributes: Mapping[str, Any]) -> None:
    """Raise `RefusedValue` naming the attribute (and the place inside a list or object) and the
    position of the first character that no target may get."""
    for name, value in attributes.items():
        problem = _find(value, str(name))
        if problem is not None:
            where, what = problem
            error = RefusedValue(f"holds {what}; the object is not sent (fix the value in the source)")
            error.target = where
            raise error


def _find(value: Any, where: str) -> tuple[str, str] | None:
    """The path and the flaw of the first string in `value` (recursively) that has one."""
    kind = type(value)
    if kind is str:
        what = flaw(value)
        return None if what is None else (where, what)
    if kind is list or kind is tuple:
        for i, item in enumerate(value):
            found = _find(item, f"{where}[{i}]")
            if found is not None:
                return found
    elif kind is dict:
        for key, item in value.items():
            if type(key) is str:
                what = flaw(key)
                if what is not None:
                    return f"{where} (a key)", what
            found = _find(item, f"{where}.{key}")
            if found is not None:
                return found
    return None
