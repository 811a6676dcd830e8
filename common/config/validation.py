"""Small checks for reading YAML settings: each takes the path of a value and the value.

Each raises `ConfigError` with the path of the value, what is wrong, and what would be right
(`check_keys` every wrong key of a section when `common.config.problems` collects).
"""

from __future__ import annotations

import difflib
from collections.abc import Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from common.config.problems import raise_all
from common.errors import ConfigError


def as_mapping(path: str, raw: Any) -> Mapping[str, Any]:
    if not isinstance(raw, Mapping):
        raise ConfigError(path, f"expected a mapping of keys to values, got {_kind(raw)}")
    return raw


def as_list(path: str, raw: Any) -> list[Any]:
    if not isinstance(raw, list):
        raise ConfigError(path, f"expected a list, got {_kind(raw)}")
    return raw


KeysSeen = tuple[str, tuple[str, ...], tuple[str, ...]]
"""A section's path, the keys it allows and those it requires."""

_SEEN: ContextVar[list[KeysSeen] | None] = ContextVar("roster_config_keys_seen", default=None)


@contextmanager
def recording_keys() -> Iterator[list[KeysSeen]]:
    """Collect every section that `check_keys` checks meanwhile: the key catalogue of the docs
    (`python -m engine.docs`) comes from the parsers themselves, so it cannot drift from them."""
    seen: list[KeysSeen] = []
    token = _SEEN.set(seen)
    try:
        yield seen
    finally:
        _SEEN.reset(token)


def check_keys(
    path: str, raw: Mapping[str, Any], allowed: Collection[str], *, required: Collection[str] = ()
) -> None:
    """Refuse unknown keys (suggesting the closest known one) and missing required keys."""
    seen = _SEEN.get()
    if seen is not None:
        seen.append((path, tuple(allowed), tuple(required)))
    errors = []
    for key in raw:
        if key not in allowed:
            close = difflib.get_close_matches(str(key), list(allowed), n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"known keys: {', '.join(sorted(allowed))}"
            errors.append(ConfigError(join(path, key), "unknown key", hint))
    for key in required:
        if raw.get(key) is None:
            fix = f"add `{key}:` under {path or 'the top level'}"
            errors.append(ConfigError(join(path, key), "is required", fix))
    raise_all(errors)


def string(path: str, raw: Any) -> str:
    if not isinstance(raw, str) or not raw:
        raise ConfigError(path, f"expected a non-empty string, got {_kind(raw)}")
    return raw


def integer(path: str, raw: Any, *, minimum: int | None = None) -> int:
    if isinstance(raw, bool) or not isinstance(raw, int):
        raise ConfigError(path, f"expected a whole number, got {_kind(raw)}")
    if minimum is not None and raw < minimum:
        raise ConfigError(path, f"must be at least {minimum}, got {raw}")
    return raw


def number(path: str, raw: Any, *, minimum: float | None = None) -> float:
    if isinstance(raw, bool) or not isinstance(raw, int | float):
        raise ConfigError(path, f"expected a number, got {_kind(raw)}")
    if minimum is not None and raw < minimum:
        raise ConfigError(path, f"must be at least {minimum}, got {raw}")
    return float(raw)


def positive(path: str, raw: Any) -> float:
    """A number above 0, such as a timeout."""
    value = number(path, raw, minimum=0)
    if value == 0:
        raise ConfigError(path, "must be above 0")
    return value


def boolean(path: str, raw: Any) -> bool:
    if not isinstance(raw, bool):
        raise ConfigError(path, f"expected true or false, got {_kind(raw)}")
    return raw


def choice(path: str, raw: Any, options: Collection[str]) -> str:
    if raw not in options:
        close = difflib.get_close_matches(str(raw), list(options), n=1)
        hint = f"did you mean {close[0]!r}?" if close else None
        raise ConfigError(path, f"{raw!r} is not one of {', '.join(sorted(options))}", hint)
    return str(raw)


def unique_names(path: str, names: Sequence[str | None], what: str) -> None:
    """Refuse a name used twice in the list at `path` (jobs, targets), naming both places; None stands
    for an item that could not be read."""
    first: dict[str, int] = {}
    for i, name in enumerate(names):
        if name is None:
            continue
        if name in first:
            raise ConfigError(
                f"{path}[{i}].name",
                f"{name!r} is used by {path}[{first[name]}] too",
                f"give each {what} its own name",
            )
        first[name] = i


def join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else str(key)


def _kind(raw: Any) -> str:
    if raw is None:
        return "nothing"
    return f"{type(raw).__name__} {raw!r}" if isinstance(raw, int | float | bool) else type(raw).__name__
