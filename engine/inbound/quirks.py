"""The PATCH shapes the main identity providers send that RFC 7644 does not, rewritten into the RFC's.

Accepted, each with where it is documented (and a test in tests/inbound/test_quirks.py that replays it):

Microsoft Entra ID, "Known issues and resolutions with SCIM 2.0 protocol compliance of the Microsoft Entra
user provisioning service" (learn.microsoft.com, entra/identity/app-provisioning/
application-provisioning-config-problem-scim-compatibility), in the requests it shows "without feature
flag" (without `aadOptscim062020` in the tenant URL) and with it:

* operation names capitalised: `"op": "Replace"`, `"Add"`, `"Remove"` (also in Microsoft's SCIM endpoint
  tutorial, "Develop and plan provisioning for a SCIM endpoint");
* booleans sent as the strings "True"/"False" (`{"op": "Replace", "path": "active", "value": "False"}`):
  turned into booleans for the boolean attributes of `attributes.BOOLEANS`;
* a single-valued attribute added as a list of one `{"value": ...}` (`{"op": "Add", "path": "nickName",
  "value": [{"value": "Babs"}]}`): the value itself, for the attributes of `attributes.SINGLE_STRINGS`;
* a `replace` without a path whose value object's keys are paths (`"name.givenName"`,
  `"emails[type eq \\"work\\"].value"`, `"urn:...:enterprise:2.0:User:employeeNumber"`): one operation
  per such key, with the key as its path;
* a member removed by `{"op": "Remove", "path": "members", "value": [{"value": id}]}`: one removal per
  value, `members[value eq "id"]`, instead of removing every member as the RFC would read it (and a
  single-valued attribute removed with its value in that shape is removed).

Microsoft Entra ID's manager mapping sends the enterprise `manager` as the manager's id, a plain string,
where RFC 7643 §4.3 has a complex `{"value": id}`: a string is wrapped. The boolean strings are also
understood in filters (`roles[primary eq "True"]`, see `match`).

Okta, "Okta and SCIM Version 2.0" (developer.okta.com/docs/api/openapi/okta-scim/guides/scim-20):
`{"op": "replace", "value": {"active": false}}` to deactivate, and group members added with
`{"op": "add", "path": "members", ...}` and removed with `members[value eq "id"]` are the RFC's own forms
and need nothing here; its group rename, `{"op": "replace", "value": {"id": ..., "displayName": ...}}`,
repeats the read-only `id`, which `patch` accepts when it is unchanged.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from engine.inbound.attributes import BOOLEANS, MANAGER, MULTI_VALUED, SINGLE_STRINGS, split_path

OPERATIONS = {"add", "remove", "replace"}


def operations(operation: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The RFC operations that one operation as a client sent it means."""
    result = dict(operation)
    name = result.get("op")
    if isinstance(name, str) and name.lower() in OPERATIONS:
        result["op"] = name.lower()
    path, value = result.get("path"), result.get("value")
    target = split_path(path) if isinstance(path, str) else None
    if result["op"] == "remove" and target is not None and isinstance(value, list) and value:
        if all(_has_value(item) and isinstance(item["value"], str | int | float) for item in value):
            if target.key not in MULTI_VALUED:
                return [{"op": "remove", "path": path}]
            return [
                {"op": "remove", "path": f"{path}[value eq {json.dumps(item['value'])}]"} for item in value
            ]
    if path is None and isinstance(value, Mapping) and result["op"] in {"add", "replace"}:
        plain = {k: v for k, v in value.items() if _is_attribute_name(k)}
        pathed = [{"op": result["op"], "path": k, "value": v} for k, v in value.items() if k not in plain]
        if pathed:
            return ([{**result, "value": plain}] if plain else []) + pathed
    return [result]


def coerce(key: str, value: Any) -> Any:
    """`value` for the attribute of canonical path `key` (as `AttrPath.full_key` spells it), with the
    vendor spellings of booleans, single values and the manager turned into the RFC's."""
    if key in BOOLEANS and isinstance(value, str) and value.lower() in {"true", "false"}:
        return value.lower() == "true"
    if key in SINGLE_STRINGS and isinstance(value, list) and len(value) == 1 and _has_value(value[0]):
        return value[0]["value"]
    if key == MANAGER and isinstance(value, str):
        return {"value": value}
    if isinstance(value, Mapping):
        return {sub: coerce(f"{key}.{sub.lower()}", item) for sub, item in value.items()}
    if isinstance(value, list):
        return [coerce(key, item) if isinstance(item, Mapping) else item for item in value]
    return value


def _has_value(item: Any) -> bool:
    return isinstance(item, Mapping) and "value" in item


def _is_attribute_name(key: str) -> bool:
    """A key a value object holds by the RFC: an attribute name, or a schema URN (an extension object)."""
    path = split_path(key)
    return (path is not None and path.urn is None and path.sub is None) or (
        key[:4].lower() == "urn:" and (path is None or path.sub is None)
    )
