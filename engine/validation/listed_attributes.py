"""An LDAP source that lists its `attributes:` reads only those: a job reading any other one would get
null on every object (and blank that attribute everywhere), so it is checked without a connection.

The source keys each attribute by its name as listed (and adds `dn`), so a name the job writes in
another case is as absent as a name the list lacks.
"""

from __future__ import annotations

from common.errors import ConfigError
from engine.config import JobConfig
from engine.sources.ldap import LdapSourceSettings
from engine.validation.uses import absent, column_uses


def check_listed_attributes(job: JobConfig) -> list[ConfigError]:
    """The columns `job` reads that its LDAP source's `attributes:` leaves out (none when it lists none)."""
    settings = job.source.settings
    if not isinstance(settings, LdapSourceSettings) or not settings.attributes:
        return []
    names = (*settings.attributes, "dn")
    origin = f"{job.path}.source.attributes"
    return [absent(use, names, origin) for use in column_uses(job) if use.column not in names]
