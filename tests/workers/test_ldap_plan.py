"""An operation read against the LDAP target's settings, without a server: names, DN, matching value, diff."""

from __future__ import annotations

from typing import Any

import ldap3
import pytest

from common.errors import PermanentError
from queues.contracts import Operation
from workers.connectors.ldap.plan import entry_changes, ldap_values, match_filter, plan_operation
from workers.connectors.ldap.settings import LdapSettings, parse_ldap_settings

SUFFIX = "dc=example,dc=org"


def target(**overrides: Any) -> LdapSettings:
    raw = {
        "url": "ldap://127.0.0.1",
        "bind_dn": f"cn=roster,{SUFFIX}",
        "bind_password": "pw",
        "base_dn": SUFFIX,
        "users": {
            "dn": f"uid={{userName}},ou=people,{SUFFIX}",
            "attributes": {"userName": "uid", "familyName": "sn"},
        },
        **overrides,
    }
    return parse_ldap_settings("targets[0]", raw)


def op(action: str, attributes: dict[str, Any], *, kind: str = "user", **fields: Any) -> Operation:
    return Operation(
        op_id="op-1",
        job="job",
        target="ldap",
        cycle_id="c1",
        action=action,  # type: ignore[arg-type]
        object_type=kind,
        source_id="s1",
        attributes=attributes,
        desired_hash="h",
        **fields,
    )


def test_a_create_gets_ldap_names_an_escaped_dn_and_its_matching_value() -> None:
    plan = plan_operation(op("create", {"userName": "Nuñez, Jr.", "familyName": "N", "mail": None}), target())
    assert plan.dn == f"uid=Nuñez\\, Jr.,ou=people,{SUFFIX}"
    assert plan.desired == {"uid": ["Nuñez, Jr."], "sn": ["N"], "mail": []}
    assert plan.match_value == "Nuñez, Jr."


def test_without_the_attribute_the_matching_value_comes_from_the_operations_matching_pairs() -> None:
    delete = plan_operation(op("delete", {}, matching=[["userName", "u2"]]), target())
    assert (delete.dn, delete.match_value) == (None, "u2")
    by_dn = op("disable", {}, matching=[["userName", "uid=u3"]], target_id="uid=u3")
    assert plan_operation(by_dn, target()).match_value is None  # the target id is no matching value


@pytest.mark.parametrize(
    ("operation", "words"),
    [
        (op("create", {"familyName": "N"}), "needs 'userName'"),
        (op("create", {"displayName": "G"}, kind="group"), "no `groups:` settings"),
        (op("create", {"userName": "u"}, kind="device"), "not one of user, group"),
    ],
)
def test_an_operation_its_settings_cannot_read_is_permanent(operation: Operation, words: str) -> None:
    with pytest.raises(PermanentError) as caught:
        plan_operation(operation, target())
    assert words in caught.value.message


def test_values_become_ldap_text() -> None:
    assert ldap_values([True, False, 3, "", None, "x"]) == ["TRUE", "FALSE", "3", "x"]
    assert ldap_values(None) == []


def test_the_match_filter_escapes_its_values() -> None:
    kind = target().users
    assert kind is not None
    assert match_filter(kind, ["a*"]) == "(&(objectClass=inetOrgPerson)(uid=a\\2a))"
    assert match_filter(kind, ["a", "b"]) == "(&(objectClass=inetOrgPerson)(|(uid=a)(uid=b)))"


def test_only_attributes_that_differ_as_sets_are_replaced_and_missing_classes_added() -> None:
    current = {"objectclass": ["top", "person"], "sn": ["b", "a"], "cn": ["x"], "mail": []}
    desired = {"sn": ["a", "b"], "cn": ["y"], "mail": [], "title": []}
    changes = entry_changes(current, desired, ["person", "inetOrgPerson"])
    assert changes == {
        "cn": [(ldap3.MODIFY_REPLACE, ["y"])],
        "objectClass": [(ldap3.MODIFY_ADD, ["inetOrgPerson"])],
    }
