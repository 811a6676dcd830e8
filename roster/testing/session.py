"""One run of the conformance checks against one opened connector: `Session` makes the kit's objects
(each with a unique key under the run's prefix), sends operations through `apply()` under a time limit,
reads the target back through the probe, remembers every object it made and deletes them at the end.

A check fails by raising `Failed` with what it saw, and is skipped by raising `NotRun` with the reason.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from common.errors import ConnectorError
from queues.contracts import Action, Operation
from roster.testing.probe import Probe
from roster.testing.profile import Profile, Sample
from workers.connectors.base import Applied, Connector, Outcome

PREFIX_STEM = "roster-ck-"
"""Every object the kit writes has a matching value that starts with this stem and the run's own
hex token (`roster-ck-3f2a1c-`), so that a person can recognise it and a clean-up can find it."""


class Failed(Exception):
    """A check saw the connector break the contract; the message says what it saw."""


class NotRun(Exception):
    """A check cannot run with this profile or probe; the message says why."""


def new_prefix() -> str:
    return f"{PREFIX_STEM}{secrets.token_hex(3)}-"


@dataclass(frozen=True, slots=True)
class KitObject:
    """One object the kit provisions: its key (the matching value), source id and filled attributes."""

    object_type: str
    key: str
    token: str
    attributes: dict[str, Any]


@dataclass(slots=True)
class Session:
    """The connector under test, the probe that reads the target, and the objects made so far."""

    connector: Connector
    probe: Probe
    profile: Profile
    prefix: str = field(default_factory=new_prefix)
    target: str = "conformance"
    made: dict[tuple[str, str], KitObject] = field(default_factory=dict)
    """(object type, target id) -> the object: what the clean-up deletes."""
    sent: list[KitObject] = field(default_factory=list)
    """Every object sent in a create or update, found again by its key at the clean-up: an object
    made without the kit hearing of it (a batch reported failed, a create that did not match) too."""
    _count: int = 0

    # -- Objects and operations ----------------------------------------------------------------------

    def sample(self, object_type: str) -> Sample:
        sample = self.profile.samples.get(object_type)
        if sample is None:
            raise NotRun(f"the profile has no {object_type} sample")
        return sample

    def new_object(
        self, object_type: str, *, key: str | None = None, extra: Mapping[str, Any] | None = None
    ) -> KitObject:
        """A fresh object of `object_type` from its sample; `key` replaces the plain unique key."""
        self._count += 1
        token = f"{self.prefix}{self._count}"
        key = token if key is None else key
        attributes = fill({**self.sample(object_type).attributes, **(extra or {})}, key, token)
        return KitObject(object_type, key, token, attributes)

    def fill(self, obj: KitObject, values: Mapping[str, Any]) -> dict[str, Any]:
        return fill(dict(values), obj.key, obj.token)

    def changed(self, obj: KitObject) -> KitObject:
        """`obj` with its sample's `changes`; a change of the matching attribute gives it a new key."""
        attributes = {**obj.attributes, **self.fill(obj, self.sample(obj.object_type).changes)}
        key = attributes.get(self.sample(obj.object_type).match, obj.key)
        return KitObject(obj.object_type, str(key), obj.token, attributes)

    def op(
        self,
        action: Action,
        obj: KitObject,
        *,
        target_id: str | None = None,
        attributes: Mapping[str, Any] | None = None,
        **extra: Any,
    ) -> Operation:
        """An operation on `obj` as the engine would send it, with a new op id."""
        attributes = dict(obj.attributes if attributes is None else attributes)
        digest = hashlib.sha256(orjson.dumps(attributes, option=orjson.OPT_SORT_KEYS)).hexdigest()
        return Operation(
            op_id=f"{self.prefix}op-{secrets.token_hex(4)}",
            job="conformance",
            target=self.target,
            cycle_id=f"{self.prefix}cycle",
            action=action,
            object_type=obj.object_type,
            source_id=obj.token,
            attributes=attributes,
            desired_hash=digest[:16],
            target_id=target_id,
            matching=[[self.sample(obj.object_type).match, obj.key]],
            **extra,
        )

    # -- Calls ---------------------------------------------------------------------------------------

    async def apply(self, ops: Sequence[Operation], objects: Sequence[KitObject]) -> list[Outcome]:
        """`apply(ops)` within the profile's patience; one outcome per operation, or `Failed`."""
        try:
            outcomes = await asyncio.wait_for(self.connector.apply(ops), self.profile.patience_s)
        except TimeoutError:
            raise Failed(
                f"apply() of {len(ops)} operation(s) did not return within {self.patience}"
            ) from None
        if len(outcomes) != len(ops):
            raise Failed(f"apply() of {len(ops)} operation(s) returned {len(outcomes)} outcome(s)")
        self.sent += [obj for op, obj in zip(ops, objects, strict=True) if op.action in ("create", "update")]
        for op, obj, outcome in zip(ops, objects, outcomes, strict=True):
            if not isinstance(outcome, Applied | ConnectorError):
                raise Failed(
                    f"apply() returned {outcome!r} for {op.action}: expected Applied or a ConnectorError"
                )
            if isinstance(outcome, Applied) and outcome.target_id and op.action in ("create", "update"):
                self.made[(op.object_type, outcome.target_id)] = obj
        return outcomes

    async def applied(self, op: Operation, obj: KitObject) -> str:
        """Apply one operation that must succeed; its target id."""
        (outcome,) = await self.apply([op], [obj])
        return self.target_id_of(op, outcome)

    async def applied_any(self, op: Operation, obj: KitObject) -> None:
        """Apply one operation that must succeed, with or without a target id (a delete)."""
        (outcome,) = await self.apply([op], [obj])
        if isinstance(outcome, ConnectorError):
            raise Failed(f"{op.action} of {op.object_type} {op.match_value!r} failed: {describe(outcome)}")

    def target_id_of(self, op: Operation, outcome: Outcome) -> str:
        if isinstance(outcome, ConnectorError):
            raise Failed(f"{op.action} of {op.object_type} {op.match_value!r} failed: {describe(outcome)}")
        if not outcome.target_id:
            raise Failed(
                f"{op.action} of {op.object_type} {op.match_value!r} was applied without a target id"
            )
        return outcome.target_id

    async def read(self, object_type: str, target_id: str) -> Mapping[str, Any] | None:
        return await asyncio.wait_for(self.probe.read(object_type, target_id), self.profile.patience_s)

    async def find(self, obj: KitObject) -> list[str]:
        match = self.sample(obj.object_type).match
        found = await asyncio.wait_for(
            self.probe.find(obj.object_type, match, obj.key), self.profile.patience_s
        )
        return list(found)

    @property
    def patience(self) -> str:
        return f"{self.profile.patience_s:g} s"

    # -- Expectations --------------------------------------------------------------------------------

    async def expect_holds(
        self, object_type: str, target_id: str, expected: Mapping[str, Any]
    ) -> Mapping[str, Any]:
        """The object as the probe reads it; `Failed` unless it holds every expected value."""
        got = await self.read(object_type, target_id)
        if got is None:
            raise Failed(f"{object_type} {target_id!r} is not in the target (the probe read nothing)")
        wrong = [
            f"{name}: sent {value!r}, the target holds {got.get(name)!r}"
            for name, value in expected.items()
            if not same_value(value, got.get(name), folded=name in self.profile.folded)
        ]
        if wrong:
            raise Failed(f"{object_type} {target_id!r}: " + "; ".join(wrong))
        return got

    async def expect_one(self, obj: KitObject, target_id: str) -> None:
        """Exactly one object in the target holds `obj`'s key, and it is `target_id`."""
        found = await self.find(obj)
        if found != [target_id]:
            what = "none" if not found else ", ".join(repr(f) for f in found)
            raise Failed(
                f"{len(found)} {obj.object_type}(s) in the target hold {obj.key!r} ({what}); "
                f"expected exactly {target_id!r}"
            )

    async def expect_gone(self, object_type: str, target_id: str) -> None:
        if await self.read(object_type, target_id) is not None:
            raise Failed(f"{object_type} {target_id!r} is still in the target")

    # -- Clean-up ------------------------------------------------------------------------------------

    async def clean_up(self) -> list[str]:
        """Delete every object the kit made (groups first); what is still there after, as text."""
        for obj in self.sent:
            try:
                for target_id in await self.find(obj):
                    self.made.setdefault((obj.object_type, target_id), obj)
            except (TimeoutError, ConnectorError):
                continue  # those it knows by id are deleted all the same
        self.sent.clear()
        made = sorted(self.made.items(), key=lambda item: item[0][0] != "group")
        left: list[str] = []
        for (object_type, target_id), obj in made:
            op = self.op("delete", obj, target_id=target_id)
            try:
                await asyncio.wait_for(self.connector.apply([op]), self.profile.patience_s)
                if await self.read(object_type, target_id) is None:
                    continue
            except (TimeoutError, ConnectorError):
                pass  # reported below: the object is left
            left.append(f"{object_type} {target_id!r} (key {obj.key!r})")
        self.made.clear()
        return left


def fill(value: Any, key: str, token: str) -> Any:
    """`value` with `{key}` and `{id}` replaced in its text, at any depth."""
    if isinstance(value, str):
        return value.replace("{key}", key).replace("{id}", token)
    if isinstance(value, Mapping):
        return {name: fill(item, key, token) for name, item in value.items()}
    if isinstance(value, list | tuple):
        return [fill(item, key, token) for item in value]
    return value


def same_value(sent: Any, held: Any, *, folded: bool = False) -> bool:
    """Whether the target holds what was sent: one value read as a list of one is the same, numbers and
    their text are the same, and a folded attribute compares without case."""
    if isinstance(held, list | tuple) and not isinstance(sent, list | tuple):
        if len(held) != 1:
            return False
        held = held[0]
    if isinstance(sent, list | tuple):
        if not isinstance(held, list | tuple):
            held = [] if held is None else [held]
        return sorted(_text(v, folded) for v in sent) == sorted(_text(v, folded) for v in held)
    if sent is None or held is None or isinstance(sent, bool) or isinstance(held, bool):
        return bool(sent == held)
    return _text(sent, folded) == _text(held, folded)


def _text(value: Any, folded: bool) -> str:
    text = str(value)
    return text.casefold() if folded else text


def describe(error: ConnectorError) -> str:
    code = f" (code {error.code})" if error.code else ""
    return f"{type(error).__name__}{code}: {error.message}"
