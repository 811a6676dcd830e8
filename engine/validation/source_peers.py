"""A job's source checked against its peer, reading nothing but one resource or an entry's existence:
`roster validate --connect`. SCIM: a listing of one resource with the credentials; LDAP: the bind, and
that `base_dn` (and `member_base`) exist. A file source needs no connection (`file_sources.py`)."""

from __future__ import annotations

from common.config.validation import join
from common.errors import ConfigError
from common.peers.ldap_probe import check_ldap
from common.peers.scim_probe import check_scim
from common.peers.scim_schemas import ENDPOINTS
from engine.config import JobConfig
from engine.sources.ldap import LdapSourceSettings
from engine.sources.scim import ScimSourceSettings


async def probe_source(job: JobConfig) -> list[ConfigError]:
    """The problems found on `job`'s source peer (none for a file source)."""
    settings = job.source.settings
    path = join(job.path, "source")
    if isinstance(settings, ScimSourceSettings):
        return await check_scim(path, settings.http, [ENDPOINTS[settings.object_type]])
    if isinstance(settings, LdapSourceSettings):
        bases = {join(path, "base_dn"): settings.base_dn}
        if settings.member_base is not None and settings.member_base != settings.base_dn:
            bases[join(path, "member_base")] = settings.member_base
        return await check_ldap(path, settings.link, bases)
    return []
