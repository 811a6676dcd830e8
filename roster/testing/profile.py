"""What a connector's author tells the conformance kit about their target: `Profile`, `Sample`, `Refusal`.

A profile is data, not code: which object types the target keeps, one sample object of each (whose values
name the kit's own unique keys), the value the target refuses, and how the target changes what it stores
(attribute values it folds to one case, spaces it trims). Every check reads only the profile and what the
probe says the target holds.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

PointAt = Callable[[Mapping[str, Any], str, int], Mapping[str, Any] | None]
"""The target's YAML (one target, as a mapping) pointed at `host:port` instead of its server, or None
when the target has no network address to point elsewhere (a SQLite file)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Sample:
    """One object of a type, as a job would send it.

    In `attributes` (and `changes`, `unmapped`), text may hold `{key}`: the object's matching value, which
    the kit makes unique per object and fills with hostile characters in the `values:hostile` check; and
    `{id}`: a plain unique token (letters, digits, hyphens) for attributes that must be unique but would
    refuse such characters, such as an e-mail address.
    """

    match: str
    """The matching attribute: the kit sends `[[match, key]]` as the operation's matching pair."""
    attributes: Mapping[str, Any]
    """Every attribute the job maps, e.g. `{"userName": "{key}", "displayName": "Ada {key}"}`."""
    changes: Mapping[str, Any] = field(default_factory=dict)
    """What `crud:update` changes: one attribute (or a few) to a new value; the others must stay."""
    disabled: Mapping[str, Any] | None = None
    """What the probe reads on a disabled object, e.g. `{"active": False}`; None when the type has no
    disable (the `crud:disable`, `crud:create-disabled` and `crud:update-disabled` checks are then not
    run). An enabled object must hold something else for at least one of these attributes."""
    unmapped: Mapping[str, Any] = field(default_factory=dict)
    """An attribute the job does not map, which the probe's `set` puts on the object before an update;
    the update must leave it alone (`crud:update-unmapped`)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Refusal:
    """Attributes (merged over a sample's) that the target refuses, and a part of the target's own message
    that the connector must pass on; e.g. `Refusal(attributes={"email": "zoë@exämple.org"},
    message="invalid per syntax")`."""

    attributes: Mapping[str, Any]
    message: str | None = None
    object_type: str = "user"


@dataclass(frozen=True, slots=True, kw_only=True)
class Profile:
    """The target as the kit needs to know it. Only `samples` is required."""

    samples: Mapping[str, Sample]
    """One sample per object type the connector provisions (`user`, `group`)."""
    refusal: Refusal | None = None
    """A value the target refuses, for `error:permanent` and `batch:isolation`; not run without one."""
    members: bool = False
    """The connector keeps group members (`members_add`/`members_remove`): `groups:members` runs, and
    the probe's `read` of a group gives `"members"`, a list of member target ids."""
    folded: frozenset[str] = frozenset()
    """Attributes whose values the target compares or stores in one case (e.g. SCIM `userName`)."""
    trims_spaces: bool = False
    """The target drops leading and trailing spaces, so the kit does not ask it to keep them."""
    point_at: PointAt | None = None
    """How to point the target at a dead address, for the `error:transient-*` checks; by default the
    kit rewrites the host and port of a `url:` setting (`roster.testing.deadpeers.point_url_at`)."""
    patience_s: float = 30.0
    """How long any one call to the connector may take before the kit calls it hung."""

    @property
    def object_types(self) -> tuple[str, ...]:
        return tuple(self.samples)
