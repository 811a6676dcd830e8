"""SCIM resources flattened to the names a mapping's `source:` uses, and those names back to SCIM's.

The flat names are the paths the SCIM connector takes as target names, so a SCIM-to-SCIM job maps
names one to one:

* `userName`, `active`, `emails`: a top-level attribute as the server wrote it (a list stays a list);
* `name.givenName`, `meta.lastModified`: a sub-attribute of a complex attribute;
* `emails[type eq "work"].value`: a sub-attribute of the first entry of that `type` in a multi-valued
  attribute (a type the server spells `Work` is found under its lower case too); `emails.value`: of
  its primary entry (or its first), also usable in expressions, whose `[...]` references cannot hold
  a `]`;
* `urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department` (any extension URN, and
  `...:manager.value` for its sub-attributes), and for the enterprise extension also the connector's short
  form `enterprise.department`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from common.peers.scim_schemas import ENTERPRISE_SCHEMA


def flatten(resource: Mapping[str, Any]) -> dict[str, Any]:
    """A resource's attributes under the flat names of the module docstring (`members` left as is)."""
    flat: dict[str, Any] = {}
    for name, value in resource.items():
        if name == "schemas":
            continue
        if name[:4].lower() == "urn:" and isinstance(value, dict):
            short = "enterprise." if name == ENTERPRISE_SCHEMA else None
            for attribute, attribute_value in value.items():
                _flatten_into(flat, f"{name}:{attribute}", attribute_value)
                if short:
                    _flatten_into(flat, f"{short}{attribute}", attribute_value)
            continue
        _flatten_into(flat, name, value)
    return flat


def _flatten_into(flat: dict[str, Any], name: str, value: Any) -> None:
    # dict, not Mapping: resources come from JSON, and the ABC's check is most of this function's time
    flat[name] = value
    if isinstance(value, dict):  # SCIM complex attributes hold no complex attributes (RFC 7643 §2.3.8)
        for sub, sub_value in value.items():
            flat[f"{name}.{sub}"] = sub_value
    elif isinstance(value, list) and value and all(isinstance(entry, dict) for entry in value):
        primary = next((entry for entry in value if entry.get("primary") is True), value[0])
        for sub, sub_value in primary.items():
            flat[f"{name}.{sub}"] = sub_value
        for entry in value:
            kind = entry.get("type")
            if isinstance(kind, str):
                # `type` compares without case (RFC 7643 §4.1.2): "Work" is found as the canonical "work".
                for spelling in dict.fromkeys((kind, kind.lower())):
                    for sub, sub_value in entry.items():
                        flat.setdefault(f'{name}[type eq "{spelling}"].{sub}', sub_value)


def scim_name(flat_name: str) -> str:
    """The name the server's `?attributes=` knows for a flat name (the short enterprise form expanded)."""
    if flat_name.startswith("enterprise."):
        return f"{ENTERPRISE_SCHEMA}:{flat_name.removeprefix('enterprise.')}"
    return flat_name
