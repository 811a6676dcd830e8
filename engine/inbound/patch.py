"""A PATCH request (RFC 7644 §3.5.2) applied to a resource, giving the new resource.

The operations apply in order to a copy, so a request that fails anywhere changes nothing. What each
does, where the RFC leaves room:

* `add` to a multi-valued attribute appends the values it does not hold yet; a complex value with the
  `value` (and `type`) of one already there is merged into it instead, so a retried add of a member
  never makes a duplicate. A value marked `primary` takes the mark from the others.
* `add` with a value filter that selects nothing, when the filter only says `sub eq "x"` (joined by
  `and`), adds a value made of those sub-attributes: `emails[type eq "work"].value` creates the work
  email. `replace` with a value filter that selects nothing is `noTarget`, as §3.5.2.3 says.
* `replace` of a complex attribute sets the sub-attributes given and leaves the others (§3.5.2.3);
  of a multi-valued one, replaces all its values.
* `remove` without a path is `noTarget`; of something absent, or with a filter that selects nothing,
  changes nothing (a retried remove succeeds).
* `id`, `meta` and `schemas` are the service's: changing them is `mutability` (a value equal to the
  current one is accepted, as Okta repeats `id`); removing a required attribute is `invalidValue`.

The vendors' deviations are rewritten first by `quirks`.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any, Literal

from common.peers.scim_schemas import PATCH_SCHEMA
from engine.inbound import quirks
from engine.inbound.attributes import (
    MULTI_VALUED,
    READ_ONLY,
    REQUIRED,
    REQUIRED_GROUP,
    AttrPath,
    find_key,
    get,
    is_group,
    schema_urns,
    split_path,
)
from engine.inbound.errors import ScimProblem
from engine.inbound.filter import And, Compare, Filter, PatchPath, parse_path
from engine.inbound.match import value_matches

Op = Literal["add", "remove", "replace"]


def apply_patch(resource: Mapping[str, Any], request: Any) -> dict[str, Any]:
    """The resource after the PatchOp `request`; `resource` is left as it was."""
    result = copy.deepcopy(dict(resource))
    for index, operation in enumerate(_operations(request)):
        for rfc_operation in quirks.operations(operation):
            _Operation(result, rfc_operation, f"Operations[{index}]").apply()
    return result


def _operations(request: Any) -> list[Mapping[str, Any]]:
    if not isinstance(request, Mapping):
        raise ScimProblem(400, "invalidSyntax", "a PATCH body is a JSON object")
    schemas = request.get("schemas")
    if not isinstance(schemas, list) or PATCH_SCHEMA not in schemas:
        raise ScimProblem(400, "invalidSyntax", f"a PATCH body has schemas: [{PATCH_SCHEMA!r}]")
    operations = get(request, "Operations")
    if not isinstance(operations, list) or not operations:
        raise ScimProblem(400, "invalidSyntax", "a PATCH body has a non-empty list of Operations")
    for index, operation in enumerate(operations):
        if not isinstance(operation, Mapping):
            raise ScimProblem(400, "invalidSyntax", f"Operations[{index}] is not an object")
        name = operation.get("op")
        if not isinstance(name, str) or name.lower() not in quirks.OPERATIONS:
            raise ScimProblem(
                400, "invalidSyntax", f"Operations[{index}].op is {name!r}; expected add, remove or replace"
            )
        path = operation.get("path")
        if path is not None and not isinstance(path, str):
            raise ScimProblem(400, "invalidPath", f"Operations[{index}].path is not a string")
        if name.lower() != "remove" and "value" not in operation:
            raise ScimProblem(400, "invalidValue", f"Operations[{index}]: {name} needs a value")
    return operations


class _Operation:
    """One RFC operation on the resource being built."""

    def __init__(self, resource: dict[str, Any], operation: Mapping[str, Any], where: str) -> None:
        self.resource = resource
        self.op: Op = operation["op"]
        self.path: str | None = operation.get("path")
        self.value = operation.get("value")
        self.where = where

    def problem(self, scim_type: Any, detail: str) -> ScimProblem:
        return ScimProblem(400, scim_type, f"{self.where}: {detail}")

    def apply(self) -> None:
        urns = schema_urns(self.resource) | schema_urns(self.value)
        if self.path is not None and self.path.lower() in urns:
            self._extension(self.path)
            return
        if self.path is not None:
            try:
                target = parse_path(self.path)
            except ScimProblem as problem:
                raise self.problem("invalidPath", problem.detail) from None
            if self.op == "remove" and target.filter is None and self.value is not None:
                # Only the vendors' shapes that `quirks` rewrote may name values to remove; any other
                # would remove all values, which its sender did not mean.
                raise self.problem("invalidValue", "remove takes no value; select values with a filter")
            self.on(target, self.value)
            return
        if self.op == "remove":
            raise self.problem("noTarget", "remove needs a path")
        if not isinstance(self.value, Mapping):
            raise self.problem("invalidValue", f"{self.op} without a path takes an object of attributes")
        for key, value in self.value.items():
            if key.lower() in urns:
                if not isinstance(value, Mapping):
                    raise self.problem("invalidValue", f"the value of {key} is an object of its attributes")
                for name, item in value.items():
                    self.on(self._target(f"{key}:{name}"), item)
            else:
                self.on(self._target(key), value)

    def _extension(self, urn: str) -> None:
        """An operation whose path is an extension's URN: on the whole extension object."""
        if self.op == "remove":
            key = find_key(self.resource, urn)
            if key is not None:
                del self.resource[key]
                self._unlist(urn)
            return
        if not isinstance(self.value, Mapping):
            raise self.problem("invalidValue", f"the value of {urn} is an object of its attributes")
        for name, item in self.value.items():
            self.on(self._target(f"{urn}:{name}"), item)

    def _target(self, text: str) -> PatchPath:
        path = split_path(text)
        if path is None:
            raise self.problem("invalidPath", f"{text!r} is not an attribute name")
        return PatchPath(path)

    def on(self, target: PatchPath, value: Any) -> None:
        attr = target.path
        key = attr.full_key if target.sub is None else f"{attr.key}.{target.sub.lower()}"
        value = quirks.coerce(key, value)
        self._check_mutability(target, value)
        holder = self._holder(attr, create=self.op != "remove")
        if holder is None:
            return
        name = find_key(holder, attr.name) or attr.name
        if target.filter is not None:
            self._filtered(holder, name, target, value)
        elif attr.sub is not None:
            self._sub_attribute(holder, name, attr, value)
        elif self.op == "remove":
            holder.pop(name, None)
        elif self.op == "add" and (attr.key in MULTI_VALUED or isinstance(holder.get(name), list)):
            holder[name] = _added(holder.get(name), value)
        elif isinstance(holder.get(name), dict) and isinstance(value, Mapping):
            _merge(holder[name], value)
        elif attr.key in MULTI_VALUED and not isinstance(value, list):
            holder[name] = [value]
        else:
            holder[name] = copy.deepcopy(value)
        self._tidy(attr)

    def _check_mutability(self, target: PatchPath, value: Any) -> None:
        attr = target.path
        if attr.urn is None and attr.name.lower() in READ_ONLY:
            current = get(self.resource, attr.name)
            whole = target.filter is None and attr.sub is None
            if not (self.op != "remove" and whole and value == current):
                raise self.problem("mutability", f"{attr.name} is read-only")
        required = REQUIRED_GROUP if is_group(self.resource) else REQUIRED
        if self.op == "remove" and attr.urn is None and attr.sub is None and attr.key in required:
            if target.filter is None:
                raise self.problem("invalidValue", f"{attr.name} is required and cannot be removed")

    def _holder(self, attr: AttrPath, *, create: bool) -> dict[str, Any] | None:
        """The object that holds `attr`: the resource or its extension object, made when adding."""
        if attr.urn is None:
            return self.resource
        key = find_key(self.resource, attr.urn)
        if key is None or not isinstance(self.resource[key], dict):
            if not create:
                return None
            key = key or attr.urn
            self.resource[key] = {}
        schemas = self.resource.setdefault("schemas", [])
        if isinstance(schemas, list) and attr.urn.lower() not in {str(s).lower() for s in schemas}:
            schemas.append(attr.urn)
        holder: dict[str, Any] = self.resource[key]
        return holder

    def _sub_attribute(self, holder: dict[str, Any], name: str, attr: AttrPath, value: Any) -> None:
        assert attr.sub is not None
        parent = holder.get(name)
        if isinstance(parent, list):
            if self.op != "remove":
                detail = f"{attr} is a sub-attribute of several values: select them with a filter"
                raise self.problem("invalidPath", detail)
            for item in parent:
                if isinstance(item, dict):
                    item.pop(find_key(item, attr.sub) or attr.sub, None)
            return
        if self.op == "remove":
            if isinstance(parent, dict):
                parent.pop(find_key(parent, attr.sub) or attr.sub, None)
                if not parent:
                    holder.pop(name)
            return
        if not isinstance(parent, dict):
            parent = holder[name] = {}
        _set(parent, attr.sub, value)

    def _filtered(self, holder: dict[str, Any], name: str, target: PatchPath, value: Any) -> None:
        assert target.filter is not None
        values = holder.get(name)
        if values is not None and not isinstance(values, list):
            raise self.problem("invalidPath", f"{target.path} is not multi-valued: it takes no filter")
        values = values or []
        chosen = [i for i, item in enumerate(values) if isinstance(item, dict) and _selects(item, target)]
        if self.op == "remove":
            if target.sub is None:
                values[:] = [item for i, item in enumerate(values) if i not in chosen]
            else:
                for i in chosen:
                    values[i].pop(find_key(values[i], target.sub) or target.sub, None)
            if not values:
                holder.pop(name, None)
            return
        if not chosen:
            made = _made_by(target.filter) if self.op == "add" else None
            if made is None:
                detail = f"no value of {target.path} matches the filter of {self.path!r}"
                raise self.problem("noTarget", detail)
            values.append(made)
            holder[name] = values
            chosen = [len(values) - 1]
        for i in chosen:
            if target.sub is not None:
                _set(values[i], target.sub, value)
            elif not isinstance(value, Mapping):
                raise self.problem("invalidValue", f"a value of {target.path} is an object")
            elif self.op == "add":
                _merge(values[i], value)
            else:
                values[i] = copy.deepcopy(dict(value))

    def _tidy(self, attr: AttrPath) -> None:
        """An extension object left empty by a remove goes, as an attribute without values does."""
        if attr.urn is not None and self.op == "remove":
            key = find_key(self.resource, attr.urn)
            if key is not None and self.resource[key] == {}:
                del self.resource[key]
                self._unlist(attr.urn)

    def _unlist(self, urn: str) -> None:
        """An extension whose object went is no longer one of the resource's schemas."""
        schemas = self.resource.get("schemas")
        if isinstance(schemas, list):
            schemas[:] = [s for s in schemas if not (isinstance(s, str) and s.lower() == urn.lower())]


def _selects(item: dict[str, Any], target: PatchPath) -> bool:
    assert target.filter is not None
    return value_matches(item, target.filter, target.path)


def _made_by(node: Filter) -> dict[str, Any] | None:
    """The value an `add` creates for a filter of equalities joined by `and`, or None for any other."""
    if isinstance(node, And):
        left, right = _made_by(node.left), _made_by(node.right)
        return None if left is None or right is None else {**left, **right}
    if isinstance(node, Compare) and node.op == "eq" and node.path.sub is None and node.path.urn is None:
        return {node.path.name: node.value}
    return None


def _set(obj: dict[str, Any], name: str, value: Any) -> None:
    obj[find_key(obj, name) or name] = copy.deepcopy(value)


def _merge(obj: dict[str, Any], value: Mapping[str, Any]) -> None:
    for name, item in value.items():
        _set(obj, name, item)


def _same(one: Any, other: Any) -> bool:
    """Whether two values of a multi-valued attribute are the same value: equal, or complex with the
    same `value` and `type`."""
    if isinstance(one, dict) and isinstance(other, Mapping) and "value" in one and "value" in other:
        return bool(one["value"] == other["value"] and one.get("type") == other.get("type"))
    return bool(one == other)


def _added(current: Any, value: Any) -> list[Any]:
    values = list(current) if isinstance(current, list) else ([] if current is None else [current])
    for item in value if isinstance(value, list) else [value]:
        if isinstance(item, Mapping) and item.get("primary") is True:
            for other in values:
                if isinstance(other, dict) and other.get("primary") is True:
                    other["primary"] = False
        existing = next((v for v in values if _same(v, item)), None)
        if existing is None:
            values.append(copy.deepcopy(item))
        elif isinstance(existing, dict) and isinstance(item, Mapping):
            _merge(existing, item)
    return values
