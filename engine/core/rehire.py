"""Rehire (`rehire:` of a user job): a person who comes back after their account was deleted is known
again by a key that survives (an employee number), whatever source id they come back under.

While an account lives, the state keeps its key and the values of the attributes to `keep` as they
were created (`engine.store.rehires`). When it is deleted, that becomes a departure. A create whose key
matches a departure not taken yet is a rehire: it is sent with the kept values (the old uid, say), and
with them as its matching values the target links it to the old account where the target still holds
one. The departure then records who returned and when, so the person's history shows the gap.

Kept attributes are mapped `apply: on_create`: an update never sends them, so a later change of the
source does not rename the account the rehire got back. A value the target chose among candidates
(`SelectUniqueValue`) is not known to the engine, and is not kept.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any, Final

from common.config.validation import as_list, as_mapping, check_keys, join, string
from common.errors import ConfigError

REHIRE_KEYS: Final = ("key", "keep")


@dataclass(frozen=True, slots=True, kw_only=True)
class RehireSettings:
    key: str
    """The target attribute (as the job maps it) whose value survives a person's leaving."""
    keep: tuple[str, ...] = ()
    """The target attributes (mapped `apply: on_create`) a rehire gets back as they were created."""

    def key_of(self, attributes: Mapping[str, Any]) -> str | None:
        """The key in mapped (or sent) attributes, as text; None when it has none."""
        value = attributes.get(self.key)
        if isinstance(value, list):
            value = value[0] if len(value) == 1 else None
        if value is None or value == "" or isinstance(value, dict | list):
            return None
        return str(value)

    def kept_of(self, attributes: Mapping[str, Any]) -> dict[str, Any]:
        """The values to keep in attributes a create sent; a value the target chooses among candidates
        (sent as `{"$unique": [...]}`) is left out: which one it chose is not known here."""
        return {
            name: attributes[name]
            for name in self.keep
            if name in attributes and not isinstance(attributes[name], dict)
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class Departure:
    """An account deleted from a job's target, kept by its key for a rehire."""

    job: str
    key: str
    source_id: str
    target_id: str | None
    kept: dict[str, Any]
    deleted_at: float
    returned_as: str | None = None
    """The source id of the person who came back with the key, once they did."""
    returned_at: float | None = None


def parse_rehire(
    path: str,
    raw: Any,
    *,
    object_type: str,
    mapped: Collection[str],
    created_only: Collection[str],
    redacted: Collection[str],
) -> RehireSettings | None:
    """A job's `rehire:` (None when absent), checked against the job's mappings: `mapped` the target
    attributes it maps, `created_only` those `apply: on_create`, `redacted` those never logged."""
    if raw is None:
        return None
    raw = as_mapping(path, raw)
    check_keys(path, raw, REHIRE_KEYS, required=("key",))
    if object_type != "user":
        raise ConfigError(path, "applies to user jobs only", "remove `rehire:` from this group job")
    key = string(join(path, "key"), raw["key"])
    if key not in mapped:
        raise ConfigError(
            join(path, "key"),
            f"{key!r} is not a target attribute this job maps",
            "name the target attribute that holds a value that survives leaving, such as employeeNumber",
        )
    if key in redacted:  # its value is stored as *** for everyone: every departure would share it
        raise ConfigError(
            join(path, "key"), f"{key!r} is redacted: its value is never stored", "name another attribute"
        )
    keep = []
    for i, item in enumerate(as_list(join(path, "keep"), raw.get("keep") or [])):
        where = join(join(path, "keep"), i)
        name = string(where, item)
        if name not in created_only:
            raise ConfigError(
                where,
                f"{name!r} is not a target attribute this job maps with `apply: on_create`",
                "map it `apply: on_create`, so that no update changes what the rehire got back",
            )
        if name in redacted:
            raise ConfigError(where, f"{name!r} is redacted: its value is never stored", "keep another")
        keep.append(name)
    return RehireSettings(key=key, keep=tuple(keep))
