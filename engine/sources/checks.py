"""The live checks of the built-in source types (`SourcePlugin.check`), reading nothing but one
resource, one row or an entry's existence, and writing nothing: `roster validate --connect` and
`roster engine --check` run them. SCIM: a listing of one resource with the credentials; LDAP: the
bind, and that `base_dn` (and `member_base`) exist; SQL: the connection, the columns of the table or
query, and a first row read. Each problem names the setting at fault and the fix, and holds no secret.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import aclosing
from typing import Any, cast

from common.config.validation import join
from common.errors import ConfigError, SourceError
from common.peers.ldap_probe import check_ldap
from common.peers.scim_probe import check_scim
from common.peers.scim_schemas import ENDPOINTS
from engine.sources.ldap import LdapSourceSettings
from engine.sources.scim import ScimSourceSettings
from engine.sources.sql import SqlSource, SqlSourceSettings


async def check_scim_source(path: str, settings: ScimSourceSettings) -> list[ConfigError]:
    return await check_scim(path, settings.http, [ENDPOINTS[settings.object_type]])


async def check_ldap_source(path: str, settings: LdapSourceSettings) -> list[ConfigError]:
    bases = {join(path, "base_dn"): settings.base_dn}
    if settings.member_base is not None and settings.member_base != settings.base_dn:
        bases[join(path, "member_base")] = settings.member_base
    return await check_ldap(path, settings.link, bases)


async def check_sql_source(path: str, settings: SqlSourceSettings) -> list[ConfigError]:
    """The first batch of one row, read and dropped."""
    rows = cast(AsyncGenerator[Any, None], SqlSource(settings).batches(1))  # an async generator
    try:
        async with aclosing(rows):
            await anext(rows, None)
    except SourceError as exc:
        return [ConfigError(join(path, "url"), str(exc), "check the URL, the credentials and the table")]
    return []
