"""A target checked against the real peer, writing nothing: `roster validate --connect`.

SQL: the table's definition against the settings and the attributes the jobs send; SCIM: a listing of
one resource with the credentials, and the attributes sent against the service's `/Schemas`; LDAP: the
bind, and that the base DN and the users' and groups' search bases exist. Every problem names the
setting at fault and the fix, and holds no secret.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field

from common.config.validation import join
from common.errors import ConfigError
from common.peers.ldap_probe import check_ldap
from workers.config import TargetConfig
from workers.connectors.ldap.settings import LdapSettings
from workers.connectors.scim.check import check_scim_target
from workers.connectors.scim.settings import ScimSettings
from workers.connectors.sql.check import check_sql_target
from workers.connectors.sql.settings import SqlSettings


@dataclass(frozen=True, slots=True, kw_only=True)
class TargetUse:
    """What the jobs of a target send to it."""

    sent: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    """Per object type (user, group), each attribute sent with the path of the (first) mapping that
    sends it (`jobs[0].mappings[3].target`)."""
    matched: Collection[str] = ()
    """The attributes sent as the match value (the first matching attribute of each job)."""

    @property
    def attributes(self) -> dict[str, str]:
        """Every attribute sent, whatever the object type."""
        merged: dict[str, str] = {}
        for attributes in self.sent.values():
            for attribute, where in attributes.items():
                merged.setdefault(attribute, where)
        return merged


async def probe_target(target: TargetConfig, use: TargetUse) -> list[ConfigError]:
    """The problems found on `target`'s peer (none for a target type with no peer, such as noop)."""
    settings = target.settings
    path = target.path or f"target {target.name!r}"
    if isinstance(settings, SqlSettings):
        return await check_sql_target(settings, use.attributes, matched=use.matched)
    if isinstance(settings, ScimSettings):
        return await check_scim_target(path, settings, use.sent or {"user": {}})
    if isinstance(settings, LdapSettings):
        bases = {join(path, "base_dn"): settings.base_dn}
        for kind in (settings.users, settings.groups):
            if kind is not None and kind.base not in bases.values():
                bases[join(path, f"{kind.kind}s.base")] = kind.base
        return await check_ldap(path, settings.link, bases)
    return []
