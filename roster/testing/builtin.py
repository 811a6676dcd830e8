"""Profiles of Roster's own connectors, read from a target's settings, for `roster connector-check`:
what the kit can send to a SQL table, a SCIM service or an LDAP directory without an author's profile.

They hold no refused value (that is a fact about one target, which only its owner knows), and they send
only text: a column or attribute whose type the settings do not tell is left out.
"""

from __future__ import annotations

from typing import Any

from roster.testing.profile import Profile, Sample
from workers.config import TargetConfig
from workers.connectors.ldap.settings import KindSettings, LdapSettings
from workers.connectors.scim.settings import ScimSettings
from workers.connectors.sql.settings import SqlSettings


def builtin_profile(target: TargetConfig) -> Profile | None:
    """The profile of a built-in connector's target; None for any other type (or `noop`, which keeps
    nothing to check)."""
    settings = target.settings
    if isinstance(settings, SqlSettings):
        return _sql(settings)
    if isinstance(settings, ScimSettings):
        return _scim(settings)
    if isinstance(settings, LdapSettings):
        return _ldap(settings)
    return None


def _sql(settings: SqlSettings) -> Profile:
    # Only the key column is surely text; with no columns mapping every column is listed by its name,
    # so the active column can be read back.
    columns = settings.columns or {}
    key = next((a for a, c in columns.items() if c == settings.key_column), settings.key_column)
    disabled = None
    if settings.active_column and settings.columns is None and settings.on_disable == "deactivate":
        disabled = {settings.active_column: False}
    return Profile(samples={"user": Sample(match=key, attributes={key: "{key}"}, disabled=disabled)})


def _scim(settings: ScimSettings) -> Profile:
    user = Sample(
        match="userName",
        attributes={"userName": "{key}", "displayName": "{key}", "externalId": "{id}"},
        changes={"displayName": "{key} renamed"},
        disabled={"active": False},
    )
    group = Sample(match="displayName", attributes={"displayName": "{key}", "externalId": "{id}"})
    return Profile(samples={"user": user, "group": group}, members=True, folded=frozenset({"userName"}))


def _ldap(settings: LdapSettings) -> Profile:
    samples: dict[str, Sample] = {}
    for name, kind in (("user", settings.users), ("group", settings.groups)):
        if kind is not None:
            samples[name] = _ldap_sample(kind)
    return Profile(samples=samples, members=settings.groups is not None and settings.users is not None)


def _ldap_sample(kind: KindSettings) -> Sample:
    attributes: dict[str, Any] = {}
    for name, ldap_name in kind.attributes.items():
        attributes[name] = "{id}@example.invalid" if ldap_name.lower() == "mail" else "{key}"
    for field in kind.dn.fields:
        attributes.setdefault(field, "{key}")
    match = next((n for n, a in kind.attributes.items() if a.lower() == kind.match.lower()), kind.match)
    attributes.setdefault(match, "{key}")
    free = [n for n in attributes if n != match and n not in kind.dn.fields and attributes[n] == "{key}"]
    disable = kind.disable
    disabled = None
    if disable is not None and disable.attribute and disable.value and not disable.move_to:
        disabled = {disable.attribute: disable.value}
    return Sample(
        match=match,
        attributes=attributes,
        changes={free[0]: "{key} renamed"} if free else {},
        disabled=disabled,
    )
