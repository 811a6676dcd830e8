"""A target checked against the real peer, writing nothing: `roster validate --connect`.

SQL: the table's definition against the settings and the attributes the jobs send; SCIM: a listing of
one resource with the credentials; LDAP: the bind, and that the base DN and the users' and groups'
search bases exist. Every problem names the setting at fault and the fix, and holds no secret.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field

from common.config.validation import join
from common.errors import ConfigError
from common.peers.ldap_probe import check_ldap
from common.peers.scim_probe import check_scim
from common.peers.scim_schemas import ENDPOINTS
from workers.config import TargetConfig
from workers.connectors.ldap.settings import LdapSettings
from workers.connectors.scim.settings import ScimSettings
from workers.connectors.sql.check import check_sql_target
from workers.connectors.sql.settings import SqlSettings


@dataclass(frozen=True, slots=True, kw_only=True)
class TargetUse:
    """What the jobs of a target send to it."""

    attributes: Mapping[str, str] = field(default_factory=dict)
    """Each attribute sent, with the path of the (first) mapping that sends it."""
    matched: Collection[str] = ()
    """The attributes sent as the match value (the first matching attribute of each job)."""
    object_types: Collection[str] = ("user",)


async def probe_target(target: TargetConfig, use: TargetUse) -> list[ConfigError]:
    """The problems found on `target`'s peer (none for a target type with no peer, such as noop)."""
    settings = target.settings
    path = target.path or f"target {target.name!r}"
    if isinstance(settings, SqlSettings):
        return await check_sql_target(settings, use.attributes, matched=use.matched)
    if isinstance(settings, ScimSettings):
        return await check_scim(path, settings.http, sorted({ENDPOINTS[kind] for kind in use.object_types}))
    if isinstance(settings, LdapSettings):
        bases = {join(path, "base_dn"): settings.base_dn}
        for kind in (settings.users, settings.groups):
            if kind is not None and kind.base not in bases.values():
                bases[join(path, f"{kind.kind}s.base")] = kind.base
        return await check_ldap(path, settings.link, bases)
    return []
