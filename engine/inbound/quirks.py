"""The request shapes the main identity providers send that RFC 7644 does not, rewritten into the RFC's.

Each is listed with the page that shows it; tests/engine/inbound/test_quirks.py replays the requests as
the pages print them, and tests/integration/test_inbound_vendors.py the exchanges over HTTP.

Microsoft Entra ID, "Known issues and resolutions with SCIM 2.0 protocol compliance of the Microsoft
Entra user provisioning service" (learn.microsoft.com/entra/identity/app-provisioning/
application-provisioning-config-problem-scim-compatibility), section "Flags to alter the SCIM
behavior": the requests a non-gallery app gets without `aadOptscim062020` in its tenant URL, and with it:

* operation names capitalised, `"op": "Replace"`, `"Add"`, `"Remove"` (also in the tutorial "Develop
  and plan provisioning for a SCIM endpoint in Microsoft Entra ID", section "General": "Microsoft Entra
  ID emits the values of `op` as Add, Replace, and Remove");
* a user disabled with the string `"False"` (`{"op": "Replace", "path": "active", "value": "False"}`):
  "True"/"False" become booleans for the boolean attributes of `attributes.BOOLEANS`, in values and in
  filters (`roles[primary eq "True"]`, the target names of the SingleAppRoleAssignment mapping in
  "Tutorial - Customize user provisioning attribute-mappings", see `match`);
* with the flag, a `replace` without a path whose value object's keys are paths (`"name.givenName"`,
  `"urn:...:enterprise:2.0:User:employeeNumber"`): one operation per such key, with the key as its path;
* without the flag, a member removed by `{"op": "Remove", "path": "members", "value": [{"value": id}]}`:
  one removal per value, `members[value eq "id"]`, instead of removing every member as the RFC would
  read it (a single-valued attribute removed with its value in that shape is removed).

The page shows the single-valued string added as a plain string with and without the flag (`{"op":
"Add", "path": "nickName", "value": "Babs"}`). A one-element list `[{"value": "Babs"}]` for a singular
string (`attributes.SINGLE_STRINGS`) is taken as the string too, though no Microsoft page shows it.

Entra's tutorial, section "Handling provisioning and deprovisioning of users", example 5, adds a manager
as `{"op": "Add", "path": "manager", "value": [{"$ref": ..., "value": id}]}`: an unqualified `manager`
(no core schema has one) is the enterprise extension's, and a one-element list of a complex value is
that value. The tutorial's example user (section "Design your user and group schema") holds the
enterprise `manager` as the id in a string, `"manager": "123456"`, where RFC 7643 §4.3 and the example
user of "Tutorial - Customize user provisioning attribute-mappings" have a complex `{"value": id, ...}`:
a string is wrapped as `{"value": id}`.

Entra creates a Group with a second schema, `ENTRA_GROUP_SCHEMA` (tutorial, section "Create Group"),
which declares no attributes; the service accepts it beside the core Group schema.

Okta, "Okta and SCIM Version 2.0" (developer.okta.com/docs/api/openapi/okta-scim/guides/scim-20): its
PATCH requests are the RFC's own forms (`{"op": "replace", "value": {"active": false}}`, members added
with `"path": "members"`, removed with `members[value eq "id"]`, replaced wholesale) and need nothing
here; its group rename, `{"op": "replace", "value": {"id": ..., "displayName": ...}}`, repeats the
read-only `id`, which `patch` accepts when it is unchanged.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Final

from common.peers.scim_schemas import ENTERPRISE_SCHEMA
from engine.inbound.attributes import BOOLEANS, MANAGER, MULTI_VALUED, SINGLE_STRINGS, split_path

OPERATIONS = {"add", "remove", "replace"}

ENTRA_GROUP_SCHEMA: Final = "http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group"
"""The schema Entra lists beside the core Group schema when it creates a Group."""


def operations(operation: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The RFC operations that one operation as a client sent it means."""
    result = dict(operation)
    name = result.get("op")
    if isinstance(name, str) and name.lower() in OPERATIONS:
        result["op"] = name.lower()
    path, value = result.get("path"), result.get("value")
    target = split_path(path) if isinstance(path, str) else None
    if target is not None and target.urn is None and target.name.lower() == "manager":
        path = result["path"] = f"{ENTERPRISE_SCHEMA}:{path}"
        target = split_path(path)
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
    if key == MANAGER and isinstance(value, list) and len(value) == 1 and _has_value(value[0]):
        return value[0]
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
