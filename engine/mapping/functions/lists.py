"""The functions of multi-valued attributes: Count, Item, RemoveDuplicates, SingleAppRoleAssignment and
AppRoleAssignmentsComplex."""

from __future__ import annotations

from typing import Any

from engine.mapping.functions.errors import ArgumentError, MappingError
from engine.mapping.functions.values import integer


def count(value: Any) -> int:
    if value is None:
        return 0
    return len(value) if value.__class__ is list else 1


def item(value: Any, index: Any) -> Any:
    i = integer(index, "index")
    if i is None or value is None:
        return None
    if i < 1:
        raise MappingError(f"index starts at 1, got {i}")
    values = value if value.__class__ is list else [value]
    return values[i - 1] if i <= len(values) else None


def check_item(consts: tuple[Any, ...]) -> None:
    if consts[1].__class__ is int and consts[1] < 1:
        raise ArgumentError(1, f"index starts at 1, got {consts[1]}")


def remove_duplicates(value: Any) -> Any:
    if value.__class__ is not list:
        return value
    try:
        return list(dict.fromkeys(value))
    except TypeError:  # unhashable values (objects): keep the first of each, in order
        return [v for i, v in enumerate(value) if v not in value[:i]]


def single_app_role(value: Any) -> Any:
    first = value[0] if value.__class__ is list and value else None if value == [] else value
    if isinstance(first, dict):
        return first.get("displayName") or first.get("value") or first.get("id")
    return first


def app_role_assignments_complex(value: Any) -> list[dict[str, Any]] | None:
    """Every app role assignment as a SCIM `roles` value (`{primary, type, display, value}`), as the
    product sends them to an app that takes several roles; null or no assignment stays null."""
    values = value if value.__class__ is list else [] if value is None else [value]
    roles = []
    for v in values:
        if isinstance(v, dict):
            display = v.get("displayName") or v.get("value") or v.get("id")
            role = v.get("value") or v.get("displayName") or v.get("id")
        else:
            display = role = v
        if role is not None:
            roles.append({"primary": False, "type": _ROLE_TYPE, "display": display, "value": role})
    return roles or None


_ROLE_TYPE = "WindowsAzureActiveDirectoryRole"
