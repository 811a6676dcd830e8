"""A target checked against what its jobs send (`target_problems`) and, with `roster validate --connect`,
against the real peer, writing nothing (`probe_target`).

Each connector type's plugin does the checking (its `problems` and `check`). SQL: the table's definition
against the settings and the attributes the jobs send; SCIM: a listing of one resource with the
credentials, and the attributes sent against the service's `/Schemas`; LDAP: the bind, and that the base
DN and the users' and groups' search bases exist; REST: without a connection only, the template
placeholders against the attributes sent, and with one a GET of each object type's list (or
read) URL. Every problem names the setting at fault and the fix, and
holds no secret.
"""

from __future__ import annotations

from common.errors import ConfigError
from workers.config import TargetConfig
from workers.connectors.plugin import TargetUse

__all__ = ["TargetUse", "probe_target", "target_problems"]


def target_problems(target: TargetConfig, use: TargetUse) -> list[ConfigError]:
    """What `target`'s settings cannot do with what its jobs send; needs no connection."""
    check = target.plugin.problems
    return [] if check is None else check(target.path or f"target {target.name!r}", target.settings, use)


async def probe_target(target: TargetConfig, use: TargetUse) -> list[ConfigError]:
    """The problems found on `target`'s peer (none for a type that probes nothing, such as noop)."""
    check = target.plugin.check
    return (
        [] if check is None else await check(target.path or f"target {target.name!r}", target.settings, use)
    )
