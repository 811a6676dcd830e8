"""A job's source checked against its peer, reading nothing but one resource, one row or an entry's
existence: `roster validate --connect` and `roster engine --check`. Each source type's plugin does the
checking (its `check`; the built-in ones are in `engine/sources/checks.py`). A file source needs no
connection (`file_sources.py`)."""

from __future__ import annotations

from common.config.validation import join
from common.errors import ConfigError
from engine.config import JobConfig


async def probe_source(job: JobConfig) -> list[ConfigError]:
    """The problems found on `job`'s source peer (none for a type without a live check)."""
    check = job.source.plugin.check
    return [] if check is None else await check(join(job.path, "source"), job.source.settings)
