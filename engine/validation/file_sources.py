"""A file source checked against its file: that it is there, and has every column the job reads.

`roster validate` runs this without `--connect`: the file is local, and a column named wrong (a
mapping's `source: titel` for a header's `title`) would otherwise blank that attribute on every account.
"""

from __future__ import annotations

from common.config.validation import join
from common.errors import ConfigError, SourceError
from engine.config import JobConfig
from engine.sources.file import FileSourceSettings
from engine.sources.file_columns import file_columns
from engine.validation.uses import absent, column_uses


def check_file_source(job: JobConfig) -> list[ConfigError]:
    """The problems of `job`'s file source (none when its source is not a file)."""
    settings = job.source.settings
    if not isinstance(settings, FileSourceSettings):
        return []
    if not settings.path.is_file():
        missing = "no such file" if not settings.path.exists() else "not a file"
        fix = "a relative path is read from the directory of the job file"
        return [ConfigError(join(job.path, "source.path"), f"{missing}: {settings.path}", fix)]
    try:
        columns = file_columns(settings)
    except SourceError as exc:
        return [ConfigError(join(job.path, "source.path"), str(exc))]
    known = set(columns.names)
    problems = [
        absent(use, columns.names, columns.origin)
        for use in column_uses(job, id_column=settings.id_column)
        if use.column not in known
    ]
    twice = sorted({repr(name) for name in columns.names if columns.names.count(name) > 1})
    if twice:  # the cycle would refuse the file
        problem = f"{columns.origin} names {', '.join(twice)} more than once"
        problems.append(ConfigError(join(job.path, "source.path"), problem, "give each column its own name"))
    return problems
