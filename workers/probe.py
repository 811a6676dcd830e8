"""A target checked against what its jobs send (`target_problems`) and, with `roster validate --connect`,
against the real peer, writing nothing (`probe_target`).

SQL: the table's definition against the settings and the attributes the jobs send; SCIM: a listing of
one resource with the credentials, and the attributes sent against the service's `/Schemas`; LDAP: the
bind, and that the base DN and the users' and groups' search bases exist; REST: without a connection
only, the template placeholders against the attributes sent. Every problem names the
setting at fault and the fix, and holds no secret.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field

from common.errors import ConfigError
from workers.config import TargetConfig
from workers.connectors.ldap.check import check_ldap_target, ldap_target_problems
from workers.connectors.ldap.settings import LdapSettings
from workers.connectors.rest.check import rest_template_problems
from workers.connectors.rest.settings import RestSettings
from workers.connectors.scim.check import check_scim_target, scim_path_problems
from workers.connectors.scim.settings import ScimSettings
from workers.connectors.sql.check import check_sql_target, unmapped_attributes
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


def target_problems(target: TargetConfig, use: TargetUse) -> list[ConfigError]:
    """What `target`'s settings cannot do with what its jobs send; needs no connection."""
    settings = target.settings
    path = target.path or f"target {target.name!r}"
    if isinstance(settings, SqlSettings):
        return unmapped_attributes(settings, use.attributes, use.matched)
    if isinstance(settings, ScimSettings):
        return scim_path_problems(use.sent)
    if isinstance(settings, LdapSettings):
        return ldap_target_problems(path, settings, use.sent)
    if isinstance(settings, RestSettings):
        return rest_template_problems(path, settings, use.sent)
    return []


async def probe_target(target: TargetConfig, use: TargetUse) -> list[ConfigError]:
    """The problems found on `target`'s peer (none for a target type with no peer, such as noop)."""
    settings = target.settings
    path = target.path or f"target {target.name!r}"
    if isinstance(settings, SqlSettings):
        return await check_sql_target(settings, use.attributes)
    if isinstance(settings, ScimSettings):
        return await check_scim_target(path, settings, use.sent or {"user": {}})
    if isinstance(settings, LdapSettings):
        return await check_ldap_target(path, settings, use.sent)
    return []
