"""Mappings and the `Mapper` that applies a job's list of them to one source object.

A mapping is *direct* (copy a source attribute), *constant*, or (issue 5) an *expression*: all three
plug in through the `Mapping` protocol, so the mapper and the planner never care which kind they run.
A mapping applies always, or only on create: create-only values (a generated password, a GUID) are
sent with the create and left out of the hash, so they never make a later cycle see a change.
"""

from __future__ import annotations

from collections.abc import Mapping as MappingABC
from collections.abc import Sequence
from dataclasses import dataclass
from hashlib import blake2b
from typing import Any, Literal, Protocol

import orjson

from engine.core.values import check_values
from engine.mapping.functions.values import OMIT
from engine.model import Mapped

ApplyOn = Literal["always", "create"]


class Mapping(Protocol):
    """Computes one target attribute from one source object."""

    @property
    def target(self) -> str:
        """The target attribute it computes."""
        ...

    @property
    def apply_on(self) -> ApplyOn:
        """Always, or only when the object is created."""
        ...

    def evaluate(self, source: MappingABC[str, Any]) -> Any: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class DirectMapping:
    """Copies a source attribute, or `default` when it is missing or null."""

    target: str
    source: str
    apply_on: ApplyOn = "always"
    default: Any = None

    def evaluate(self, source: MappingABC[str, Any]) -> Any:
        value = source.get(self.source)
        return self.default if value is None else value


@dataclass(frozen=True, slots=True, kw_only=True)
class ConstantMapping:
    """Always the same value."""

    target: str
    value: Any
    apply_on: ApplyOn = "always"

    def evaluate(self, source: MappingABC[str, Any]) -> Any:
        return self.value


class Mapper:
    """Applies a job's mappings in order; the hash covers only the always-applied attributes."""

    __slots__ = ("_always", "_create", "_defaulted", "_plain", "matching")

    def __init__(self, mappings: Sequence[Mapping], *, matching: Sequence[str] = ()) -> None:
        always = [m for m in mappings if m.apply_on == "always"]
        # Direct copies are most mappings and run per object per cycle: they get a loop without a
        # method call each, and those without a default (most) one without a test for None either.
        # Order among targets does not matter (the hash sorts keys) unless two write one target:
        # then all of them keep the order of the job's list.
        direct = [m for m in always if isinstance(m, DirectMapping)]
        if len({m.target for m in direct}) == len(direct):
            self._plain = tuple((m.target, m.source) for m in direct if m.default is None)
            self._defaulted = tuple((m.target, m.source, m.default) for m in direct if m.default is not None)
        else:
            self._plain = ()
            self._defaulted = tuple((m.target, m.source, m.default) for m in direct)
        self._always = tuple(m for m in always if not isinstance(m, DirectMapping))
        self._create = tuple(m for m in mappings if m.apply_on == "create")
        self.matching = tuple(matching)

    @property
    def targets(self) -> list[str]:
        """The attributes every update sends (not those set on create only), each once."""
        named = (
            [t for t, _ in self._plain]
            + [t for t, _, _ in self._defaulted]
            + [m.target for m in self._always]
        )
        return list(dict.fromkeys(named))

    def map(self, source: MappingABC[str, Any]) -> Mapped:
        """Raises `MappingError` when an expression fails on this object, or `RefusedValue` (one) when a
        value holds a character no target may get (the object fails, not the cycle). An expression
        that yields `OMIT` (IgnoreFlowIfNullOrEmpty) leaves its attribute out."""
        get = source.get
        attributes = {t: get(s) for t, s in self._plain}
        for t, s, d in self._defaulted:
            attributes[t] = d if (v := get(s)) is None else v
        for m in self._always:
            value = m.evaluate(source)
            if value is not OMIT:
                attributes[m.target] = value
        create_only: dict[str, Any] = {}
        for m in self._create:
            value = m.evaluate(source)
            if value is not OMIT:
                create_only[m.target] = value
        if create_only:
            check_values(create_only)
        return Mapped(attributes, create_only, _checked_hash(attributes))


def attribute_hash(attributes: MappingABC[str, Any]) -> str:
    """A stable digest of attributes: key order does not matter, any value change does."""
    body = orjson.dumps(attributes, option=_HASHED)
    return blake2b(body, digest_size=16).hexdigest()


def _checked_hash(attributes: MappingABC[str, Any]) -> str:
    """`attribute_hash`, raising `RefusedValue` when a value holds a character no target may get.

    The JSON the hash is made of is the cheap first look: orjson refuses a lone surrogate, and writes
    every C0 control as an escape with a backslash. Only attributes whose JSON has a backslash (also
    from a quote, a backslash, or an allowed tab, newline or return) are scanned character by
    character; most have none, and finding a byte costs little."""
    try:
        body = orjson.dumps(attributes, option=_HASHED)
    except TypeError:
        check_values(attributes)  # raises for a lone surrogate; anything else is not ours to word
        raise
    if _BACKSLASH in body:  # an int: memchr, ten times faster than looking for b"\\"
        check_values(attributes)
    return blake2b(body, digest_size=16).hexdigest()


_HASHED = orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS
_BACKSLASH = ord("\\")
